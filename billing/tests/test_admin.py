"""Staff tools in the Django admin: prices (add-only) and ledger postings through the services."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client

from billing.models import BillingAccount, LedgerEntry, Price
from billing.services.ledger import ledger_post
from console.tests.factories import UserFactory
from orgs.models import AuditEvent

pytestmark = pytest.mark.django_db

ADD_URL = "/admin/billing/ledgerentry/add/"


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def test_staff_top_up_through_the_admin_once_per_reference(staff, org):
    form = {"organization_id": org.public_id, "kind": "topup", "amount": "25.00", "reference": "wire-7", "memo": ""}
    response = staff.post(ADD_URL, form, follow=True)
    assert "posted to" in response.content.decode() and "$25.00" in response.content.decode()
    again = staff.post(ADD_URL, form, follow=True)
    assert "was already posted" in again.content.decode()
    assert BillingAccount.objects.get(organization=org).balance == Decimal("25")
    assert AuditEvent.objects.filter(action="ledger.topup", organization=org).count() == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"organization_id": "org-missing"}, "No organization with ID org-missing"),
        ({"amount": "-3"}, "greater than zero"),
        ({"kind": "adjustment", "memo": ""}, "Say why"),
        ({"reference": ""}, "This field is required"),
    ],
)
def test_bad_postings_show_the_reason_and_post_nothing(staff, org, change, message):
    form = {"organization_id": org.public_id, "kind": "topup", "amount": "5", "reference": "r-1", "memo": "",
            **change}
    response = staff.post(ADD_URL, form)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not LedgerEntry.objects.exists()


def test_the_account_list_links_to_a_prefilled_top_up(staff, org):
    ledger_post(organization=org, kind="topup", amount=Decimal("1"), reference="r-1", actor=None)
    changelist = staff.get("/admin/billing/billingaccount/").content.decode()
    assert f"{ADD_URL}?organization={org.public_id}" in changelist
    account = BillingAccount.objects.get(organization=org)
    response = staff.post("/admin/billing/billingaccount/",
                          {"action": "post_ledger_entry", "_selected_action": [account.pk]})
    assert response["Location"] == f"{ADD_URL}?organization={org.public_id}"
    assert f'value="{org.public_id}"' in staff.get(response["Location"]).content.decode()


def test_ledger_rows_cannot_be_changed_or_deleted(staff, org):
    entry = ledger_post(organization=org, kind="topup", amount=Decimal("1"), reference="r-1", actor=None).entry
    page = staff.get(f"/admin/billing/ledgerentry/{entry.pk}/change/")
    assert page.status_code == 200 and "Save" not in page.content.decode()
    assert staff.post(f"/admin/billing/ledgerentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert LedgerEntry.objects.filter(pk=entry.pk).exists()


def test_prices_are_added_not_edited_and_audited(staff):
    response = staff.post("/admin/billing/price/add/", {
        "model": "acme-large", "input_per_mtok": "1.20", "output_per_mtok": "4.80",
        "effective_from_0": "2026-01-01", "effective_from_1": "00:00:00",
    })
    assert response.status_code == 302
    price = Price.objects.get(model="acme-large")
    assert AuditEvent.objects.get(action="price.set").target_id == str(price.pk)
    duplicate = staff.post("/admin/billing/price/add/", {
        "model": "acme-large", "input_per_mtok": "-1", "output_per_mtok": "4.80",
        "effective_from_0": "2026-01-01", "effective_from_1": "00:00:00",
    })
    assert duplicate.status_code == 200 and Price.objects.count() == 1
    assert "Save" not in staff.get(f"/admin/billing/price/{price.pk}/change/").content.decode()
