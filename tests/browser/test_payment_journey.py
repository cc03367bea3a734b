"""An org admin adds $10 by card in real Chromium: localstripe serves Stripe.js's stand-in and
delivers the signed webhook to the live server; the page polls until the balance rises."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from console.tests.factories import TEST_PASSWORD, UserFactory
from orgs.models import Role
from orgs.tests.factories import MembershipFactory
from tests.stripe import FakeStripe

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in_to_billing(page: Page, base_url: str) -> None:
    admin = UserFactory(email="grace@example.com")
    MembershipFactory(user=admin, role=Role.ADMIN, organization__name="Grace Labs")
    page.goto(base_url + "/accounts/login/")
    page.get_by_label("Email").fill(admin.email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    page.get_by_role("link", name="Billing").click()
    expect(page.locator("#balance")).to_have_text("$0.00")


def confirm_password(page: Page) -> None:
    """Paying asks for the password again (allauth's reauthentication), then resumes the request."""
    expect(page.get_by_role("heading", name="Confirm Access")).to_be_visible()
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Confirm").click()


def type_card(page: Page, number: str) -> None:
    """localstripe's Elements stand-in: plain inputs named by placeholder."""
    element = page.locator("#card-element")
    element.get_by_placeholder("number").fill(number)
    element.get_by_placeholder("exp_month").fill("12")
    element.get_by_placeholder("exp_year").fill("30")
    element.get_by_placeholder("cvc").fill("123")
    element.get_by_placeholder("postal_code").fill("10115")


def test_admin_adds_10_dollars_by_card_and_sees_the_balance_rise(live_server, page: Page, stripe_fake: FakeStripe,
                                                                 artifacts_dir):
    stripe_fake.register_webhook(live_server.url + "/stripe/webhook")
    sign_in_to_billing(page, live_server.url)
    page.screenshot(path=artifacts_dir / "01-billing.png", full_page=True)
    page.get_by_role("link", name="Add funds").click()
    page.get_by_label("$10.00").check()
    page.screenshot(path=artifacts_dir / "02-amount.png", full_page=True)
    page.get_by_role("button", name="Continue to payment").click()
    confirm_password(page)
    expect(page.get_by_role("heading", name="Pay $10.00")).to_be_visible()
    type_card(page, "4242424242424242")
    page.screenshot(path=artifacts_dir / "03-card.png", full_page=True)
    page.get_by_role("button", name="Pay $10.00").click()
    # The browser's return shows "Processing…" or, when the webhook was faster, the credit.
    expect(page.get_by_text("Payment received.")).to_be_visible(timeout=15_000)
    page.screenshot(path=artifacts_dir / "04-received.png", full_page=True)
    page.get_by_role("link", name="Back to Billing").click()
    expect(page.locator("#balance")).to_have_text("$10.00")
    expect(page.locator("#rate-tier")).to_have_text("Tier1")
    expect(page.get_by_role("link", name="Receipt (PDF)")).to_be_visible()
    page.screenshot(path=artifacts_dir / "05-ledger.png", full_page=True)


def test_a_3d_secure_card_is_confirmed_in_the_browser(live_server, page: Page, stripe_fake: FakeStripe,
                                                      artifacts_dir):
    stripe_fake.register_webhook(live_server.url + "/stripe/webhook")
    sign_in_to_billing(page, live_server.url)
    page.get_by_role("link", name="Add funds").click()
    page.get_by_label("Other amount").fill("12.50")
    page.get_by_role("button", name="Continue to payment").click()
    confirm_password(page)
    type_card(page, "4000002500003155")  # asks for 3-D Secure on setup and on payment
    page.get_by_role("button", name="Pay $12.50").click()
    page.get_by_role("button", name="Complete authentication").click()  # the card's setup
    page.screenshot(path=artifacts_dir / "01-3ds.png", full_page=True)
    page.get_by_role("button", name="Complete authentication").click()  # the payment
    expect(page.get_by_text("Payment received.")).to_be_visible(timeout=15_000)
    page.get_by_role("link", name="Back to Billing").click()
    expect(page.locator("#balance")).to_have_text("$12.50")


def test_a_declined_card_says_so_in_the_browser(live_server, page: Page, stripe_fake: FakeStripe):
    stripe_fake.register_webhook(live_server.url + "/stripe/webhook")
    sign_in_to_billing(page, live_server.url)
    page.get_by_role("link", name="Add funds").click()
    page.get_by_label("$25.00").check()
    page.get_by_role("button", name="Continue to payment").click()
    confirm_password(page)
    type_card(page, "4000000000000002")
    page.get_by_role("button", name="Pay $25.00").click()
    expect(page.locator("#card-error")).to_have_text("Your card was declined.")
