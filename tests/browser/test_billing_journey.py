"""An org admin watches the balance in real Chromium while the gateway reports usage, filters the
ledger (htmx) and downloads it as CSV."""

from __future__ import annotations

import csv
import json
import re
import urllib.request
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from billing.models import LedgerKind
from billing.services.ledger import ledger_post
from billing.services.rollups import usage_aggregate
from billing.tests.factories import PriceFactory, ProjectFactory, make_api_key
from console.tests.factories import TEST_PASSWORD, UserFactory
from orgs.models import Role
from orgs.tests.factories import MembershipFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def report_usage(base_url: str, key_id: str, event_id: str, tokens: int) -> dict:
    body = {"events": [{"id": event_id, "key_id": key_id, "model": "acme-large", "input_tokens": tokens,
                        "output_tokens": 0, "occurred_at": timezone.now().isoformat()}]}
    request = urllib.request.Request(  # noqa: S310 -- the live test server
        f"{base_url}/api/v1/gateway/usage", data=json.dumps(body).encode(), method="POST",
        headers={"X-Gateway-Token": "test-gateway-token", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:  # noqa: S310
        return json.load(response)


def test_admin_sees_usage_hit_the_balance_filters_the_ledger_and_downloads_it(live_server, page: Page,
                                                                              artifacts_dir):
    admin = UserFactory(email="ada@example.com")
    org = MembershipFactory(user=admin, role=Role.ADMIN, organization__name="Ada Labs").organization
    PriceFactory(model="acme-large", input_per_mtok=Decimal("2.50"), output_per_mtok=Decimal("10"))
    ledger_post(organization=org, kind=LedgerKind.TOPUP, amount=Decimal("25"), reference="wire-2026-001",
                memo="Bank transfer", actor=None)
    _raw, key = make_api_key(project=ProjectFactory(organization=org, name="Chatbot"))

    page.goto(live_server.url + "/accounts/login/")
    page.get_by_label("Email").fill(admin.email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    page.get_by_role("link", name="Billing").click()
    expect(page.get_by_role("heading", name="Billing")).to_be_visible()
    expect(page.locator("#balance")).to_have_text("$25.00")
    expect(page.locator("#rate-tier")).to_have_text("Tier2")
    page.screenshot(path=artifacts_dir / "01-billing.png", full_page=True)

    assert report_usage(live_server.url, key.public_id, "evt-1", 2_000_000)["accepted"] == 1  # $5.00
    page.reload()
    expect(page.locator("#balance")).to_have_text("$20.00")
    expect(page.locator("#month-usage")).to_have_text("$5.00")
    rows = page.locator("#ledger-table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("Usage charge")
    expect(rows.first).to_contain_text("-$5.00")
    page.screenshot(path=artifacts_dir / "02-after-usage.png", full_page=True)

    page.get_by_label("Type").select_option("topup")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Bank transfer")
    expect(page).to_have_url(re.compile(r"kind=topup"))
    page.screenshot(path=artifacts_dir / "03-filtered.png", full_page=True)

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV").click()
    download = download_info.value
    path = artifacts_dir / download.suggested_filename
    download.save_as(path)
    lines = list(csv.DictReader(path.open()))
    assert [(line["type"], line["amount"], line["reference"]) for line in lines] == [
        ("topup", "25.000000", "wire-2026-001"),
    ]


def test_the_overview_loads_the_consumption_chart_and_switches_its_range(live_server, page: Page, artifacts_dir):
    admin = UserFactory(email="ada@example.com")
    org = MembershipFactory(user=admin, role=Role.ADMIN, organization__name="Ada Labs").organization
    PriceFactory(model="acme-large", input_per_mtok=Decimal("2.50"), output_per_mtok=Decimal("10"))
    ledger_post(organization=org, kind=LedgerKind.TOPUP, amount=Decimal("25"), reference="wire-1", actor=None)
    _raw, key = make_api_key(project=ProjectFactory(organization=org, name="Chatbot"))
    assert report_usage(live_server.url, key.public_id, "evt-1", 2_000_000)["accepted"] == 1  # $5.00
    usage_aggregate()  # the beat job that folds events into the rollups the charts read

    page.goto(live_server.url + "/accounts/login/")
    page.get_by_label("Email").fill(admin.email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    panel = page.locator("#usage-panel")
    expect(panel.get_by_role("heading", name="Consumption")).to_be_visible()  # loaded by htmx
    expect(page.locator("#usage-total-cost")).to_have_text("$5.00")
    expect(page.locator("#usage-by-project")).to_contain_text("Chatbot")
    expect(panel).to_contain_text("Last 30 days")
    page.screenshot(path=artifacts_dir / "01-overview-30-days.png", full_page=True)

    panel.get_by_role("link", name="7 days").click()
    expect(page.locator("#usage-panel")).to_contain_text("Last 7 days")
    expect(page.locator("#usage-total-cost")).to_have_text("$5.00")
    expect(page).to_have_url(re.compile(rf"/o/{org.public_id}/$"))  # the overview stays where it is
    page.screenshot(path=artifacts_dir / "02-overview-7-days.png", full_page=True)
