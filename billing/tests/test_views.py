"""The Billing page (balance + ledger) and its CSV download: org admins only."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.urls import reverse

from billing.api import usage_report
from billing.models import LedgerEntry, LedgerKind
from billing.services.ledger import ledger_post
from billing.tests.factories import PriceFactory, ProjectFactory, make_api_key, usage_event
from billing.views import LEDGER_PAGE_SIZE

pytestmark = pytest.mark.django_db


def overview_url(org, **query) -> str:
    url = reverse("billing:overview", args=[org.public_id])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def csv_url(org, **query) -> str:
    url = reverse("billing:ledger_csv", args=[org.public_id])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def post(org, kind, amount, reference, memo="", when=None):
    entry = ledger_post(organization=org, kind=kind, amount=Decimal(amount), reference=reference, memo=memo,
                        actor=None).entry
    if when:
        LedgerEntry.objects.filter(pk=entry.pk).update(created_at=when)
    return entry


@pytest.mark.parametrize(
    ("role", "status"),
    [("admin", 200), ("member", 403), ("outsider", 404), ("anonymous", 302)],
)
@pytest.mark.parametrize("view", [overview_url, csv_url])
def test_only_org_admins_see_billing(client_as, org, role, status, view):
    post(org, LedgerKind.TOPUP, "5", "secret-payment-ref")
    response = client_as(role).get(view(org))
    assert response.status_code == status
    if status != 200:
        body = b"".join(response.streaming_content) if response.streaming else response.content
        assert b"secret-payment-ref" not in body


def test_the_page_shows_the_balance_usage_tier_prices_and_ledger(client_as, org):
    PriceFactory(model="acme-large", input_per_mtok=Decimal("1.20"), output_per_mtok=Decimal("4.80"))
    post(org, LedgerKind.TOPUP, "25", "pay-1", memo="Card payment")
    _raw, key = make_api_key(project=ProjectFactory(organization=org))
    usage_report([usage_event("e1", key, "acme-large", input_tokens=1_000_000, output_tokens=0)])
    page = client_as("admin").get(overview_url(org)).content.decode()
    assert 'id="balance">$23.80<' in page
    assert 'id="month-usage">$1.20<' in page
    assert 'id="rate-tier">Tier2<' in page
    assert "acme-large" in page and "$4.80" in page
    assert "Card payment" in page and "pay-1" in page
    assert "+$25.00" in page and "-$1.20" in page
    assert "1 API call on" in page
    assert org.public_id in page  # to quote when asking for a top-up


def test_an_exhausted_balance_says_calls_are_denied(client_as, org):
    page = client_as("admin").get(overview_url(org)).content.decode()
    assert "Your balance is exhausted" in page
    assert 'id="balance">$0.00<' in page
    assert "No ledger entries" in page


def test_filter_by_kind_and_dates(client_as, org):
    post(org, LedgerKind.TOPUP, "10", "jan", when=datetime(2026, 1, 10, 12, tzinfo=UTC))
    post(org, LedgerKind.TOPUP, "20", "feb", when=datetime(2026, 2, 10, 12, tzinfo=UTC))
    post(org, LedgerKind.ADJUSTMENT, "-1", "adj", memo="correction", when=datetime(2026, 2, 11, 0, 0, tzinfo=UTC))
    client = client_as("admin")

    def references(**query) -> list[str]:
        return [entry.reference for entry in client.get(overview_url(org, **query)).context["page"].object_list]

    assert references() == ["adj", "feb", "jan"]
    assert references(kind="topup") == ["feb", "jan"]
    assert references(date_from="2026-02-01") == ["adj", "feb"]
    assert references(date_to="2026-02-10") == ["feb", "jan"]  # the "to" day is included
    assert references(kind="adjustment", date_from="2026-02-11", date_to="2026-02-11") == ["adj"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"date_from": "2026-02-30"}, "Enter a valid date"),
        ({"date_from": "2026-03-01", "date_to": "2026-02-01"}, "on or before"),
    ],
)
def test_bad_dates_are_reported_and_not_applied(client_as, org, query, message):
    post(org, LedgerKind.TOPUP, "10", "pay-1")
    response = client_as("admin").get(overview_url(org, kind="topup", **query))
    page = response.content.decode()
    assert message in page
    assert [e.reference for e in response.context["page"].object_list] == ["pay-1"]


def test_the_ledger_is_paginated_and_htmx_gets_the_table_only(client_as, org):
    for n in range(LEDGER_PAGE_SIZE + 3):
        post(org, LedgerKind.TOPUP, "1", f"pay-{n:02d}")
    client = client_as("admin")
    first = client.get(overview_url(org)).content.decode()
    assert "Page 1 of 2" in first and "Older →" in first
    partial = client.get(overview_url(org, page=2), headers={"HX-Request": "true"})
    html = partial.content.decode()
    assert html.lstrip().startswith('<div id="ledger-table">')
    assert "<nav" not in html and "Page 2 of 2" in html
    assert html.count("<tr>") == 1 + 3  # header + the 3 oldest
    assert "pay-00" in html and "pay-03" not in html


def test_csv_download_has_exact_amounts_and_respects_filters(client_as, org):
    post(org, LedgerKind.TOPUP, "25", "pay-1", memo="=HYPERLINK(\"http://evil\")")
    PriceFactory(model="m", input_per_mtok=Decimal("1.234567"), output_per_mtok=Decimal("0"))
    _raw, key = make_api_key(project=ProjectFactory(organization=org))
    usage_report([usage_event("e1", key, "m", input_tokens=7, output_tokens=0)])
    response = client_as("admin").get(csv_url(org))
    assert response["Content-Type"].startswith("text/csv")
    assert f"ledger-{org.public_id}-" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["type"], r["amount"], r["balance_after"]) for r in rows] == [
        ("usage", "-0.000009", "24.999991"),
        ("topup", "25.000000", "25.000000"),
    ]
    assert rows[1]["memo"].startswith("'=")  # a spreadsheet will not run it
    assert rows[0]["currency"] == "USD"
    only_topups = b"".join(client_as("admin").get(csv_url(org, kind="topup")).streaming_content).decode()
    assert ",usage," not in only_topups and ",topup," in only_topups


def test_sub_cent_amounts_are_shown_exactly_not_as_zero(client_as, org):
    post(org, LedgerKind.TOPUP, "1", "pay-1")
    post(org, LedgerKind.ADJUSTMENT, "-0.001481", "adj-1", memo="tiny")
    page = client_as("admin").get(overview_url(org)).content.decode()
    assert "-$0.001481" in page
