"""An org admin watches the rate-limit gauges move in real Chromium while the gateway authorizes
calls: on the organization overview and the Billing page (refreshed by htmx, no reload), and a
project's own windows on its overview."""

from __future__ import annotations

import json
import urllib.request
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from billing.models import LedgerKind
from billing.services.ledger import ledger_post
from billing.tests.conftest import within_one_minute
from billing.tests.factories import ProjectFactory, make_api_key
from console.tests.factories import TEST_PASSWORD, UserFactory
from orgs.models import Role
from orgs.tests.factories import MembershipFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def authorize(base_url: str, raw_key: str, tokens: int) -> int:
    request = urllib.request.Request(  # noqa: S310 -- the live test server
        f"{base_url}/api/v1/gateway/authorize",
        headers={"Authorization": f"Bearer {raw_key}", "X-Gateway-Token": "test-gateway-token",
                 "X-Estimated-Tokens": str(tokens)},
    )
    try:
        with urllib.request.urlopen(request) as response:  # noqa: S310
            json.load(response)
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def gauge(page: Page, name: str):  # type: ignore[no-untyped-def]
    return page.locator(f'#rate-gauges [data-gauge="{name}"] .gauge-value')


def test_admin_sees_the_gauges_move_after_calls(live_server, page: Page, artifacts_dir):
    admin = UserFactory(email="grace@example.com")
    org = MembershipFactory(user=admin, role=Role.ADMIN, organization__name="Grace Labs").organization
    ledger_post(organization=org, kind=LedgerKind.TOPUP, amount=Decimal("10"), reference="wire-rl-1", actor=None)
    raw, key = make_api_key(project=ProjectFactory(organization=org, name="Chatbot", tpm_limit=40_000))
    within_one_minute(25)

    page.goto(live_server.url + "/accounts/login/")
    page.get_by_label("Email").fill(admin.email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    page.goto(f"{live_server.url}/o/{org.public_id}/")
    expect(page.get_by_role("heading", name="Rate limits in use")).to_be_visible()
    expect(gauge(page, "requests-this-minute")).to_have_text("0 of 200")  # Tier1
    expect(gauge(page, "concurrent-requests")).to_have_text("0 of 50")
    expect(gauge(page, "tokens-today-utc")).to_have_text("0 of unlimited")
    page.screenshot(path=artifacts_dir / "01-overview-idle.png", full_page=True)

    assert [authorize(live_server.url, raw, 1500) for _ in range(2)] == [200, 200]
    # No reload: the gauges refresh themselves every few seconds.
    expect(gauge(page, "requests-this-minute")).to_have_text("2 of 200", timeout=8_000)
    expect(gauge(page, "tokens-this-minute")).to_have_text("3,000 of 2,000,000")
    expect(gauge(page, "concurrent-requests")).to_have_text("2 of 50")
    page.screenshot(path=artifacts_dir / "02-overview-after-calls.png", full_page=True)

    page.get_by_role("link", name="Billing").click()
    expect(page.get_by_role("heading", name="Billing")).to_be_visible()
    expect(gauge(page, "requests-this-minute")).to_have_text("2 of 200")
    assert authorize(live_server.url, raw, 500) == 200
    expect(gauge(page, "requests-this-minute")).to_have_text("3 of 200", timeout=8_000)
    page.screenshot(path=artifacts_dir / "03-billing.png", full_page=True)

    page.goto(f"{live_server.url}/o/{org.public_id}/projects/{key.project.public_id}/")
    expect(page.get_by_role("heading", name="This project's rate limits")).to_be_visible()
    expect(gauge(page, "tokens-this-minute")).to_have_text("3,500 of 40,000")
    page.screenshot(path=artifacts_dir / "04-project.png", full_page=True)
