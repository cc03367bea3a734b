"""Staff services re-check the actor: an organization's own admin (or any member) calling them is
refused and nothing changes; staff holding the permission, or the platform itself (a command,
actor=None), may."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from billing.models import InvoiceKind, InvoiceRequest, InvoiceStatus, Price
from billing.services.invoices import invoice_issue, invoice_request_reject
from billing.services.prices import price_set
from billing.tests.test_invoices import admin_of, request_topup_invoice, topup
from console.errors import Forbidden
from console.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def staff_with(*codenames: str):
    user = UserFactory(is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="billing", codename__in=codenames))
    return type(user).objects.get(pk=user.pk)  # a fresh instance: permissions are cached per instance


def test_prices_are_set_by_staff_only():
    prices = dict(model="m", input_per_mtok=Decimal("1"), output_per_mtok=Decimal("2"))
    for outsider in (UserFactory(), UserFactory(is_staff=True)):  # a user; staff without the permission
        with pytest.raises(Forbidden):
            price_set(**prices, actor=outsider)
    assert not Price.objects.exists()
    assert price_set(**prices, actor=staff_with("add_price")).model == "m"
    assert price_set(model="n", input_per_mtok=Decimal("1"), output_per_mtok=Decimal("1"), actor=None).model == "n"


def test_invoices_are_issued_and_rejected_by_staff_only(org):
    request = request_topup_invoice(org, topup(org))
    assert request.kind == InvoiceKind.TOPUP
    for outsider in (admin_of(org), UserFactory(is_staff=True)):
        with pytest.raises(Forbidden):
            invoice_issue(request_id=request.pk, actor=outsider)
        with pytest.raises(Forbidden):
            invoice_request_reject(request_id=request.pk, actor=outsider, reason="no")
    assert InvoiceRequest.objects.get(pk=request.pk).status == InvoiceStatus.REQUESTED
    invoice_request_reject(request_id=request.pk, actor=staff_with("change_invoicerequest"), reason="Wrong month")
    assert InvoiceRequest.objects.get(pk=request.pk).status == InvoiceStatus.REJECTED
    again = request_topup_invoice(org, topup(org, "10.00"))
    invoice = invoice_issue(request_id=again.pk, actor=staff_with("add_invoice"))
    assert invoice.total == Decimal("10.00")


def test_ledger_postings_by_a_person_are_staffs_only(org):
    from billing.models import BillingAccount, LedgerKind
    from billing.services.ledger import ledger_staff_post

    posting = dict(organization=org, kind=LedgerKind.TOPUP, amount=Decimal("25"), reference="wire-9")
    for outsider in (admin_of(org), UserFactory(is_staff=True)):
        with pytest.raises(Forbidden):
            ledger_staff_post(**posting, actor=outsider)
    assert not BillingAccount.objects.filter(organization=org, balance__gt=0).exists()
    assert ledger_staff_post(**posting, actor=staff_with("add_ledgerentry")).created
    assert BillingAccount.objects.get(organization=org).balance == Decimal("25")
