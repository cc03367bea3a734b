"""The first journey of every customer, in real Chromium: sign up, verify, create an org, edit it."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from orgs.models import Organization

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _verification_link() -> str:
    assert mail.outbox, "no verification email was sent"
    body = mail.outbox[-1].body
    match = re.search(r"https?://\S+/accounts/confirm-email/\S+/", body)
    assert match, body
    return match.group(0)


def test_sign_up_verify_create_org_and_edit_information(live_server, page: Page, artifacts_dir):
    page.goto(live_server.url + "/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.get_by_role("link", name="Sign up").first.click()
    page.get_by_label("Email").fill("ana@example.com")
    page.get_by_label("Password:", exact=True).fill("a-long-Pass-phrase-42")
    page.get_by_label("Password (again):").fill("a-long-Pass-phrase-42")
    page.screenshot(path=artifacts_dir / "01-signup.png", full_page=True)
    page.get_by_role("button", name="Sign Up").click()
    expect(page.get_by_role("heading", name="Verify Your Email Address")).to_be_visible()
    page.screenshot(path=artifacts_dir / "02-verify-sent.png", full_page=True)

    link = _verification_link().replace("http://testserver", live_server.url)
    page.goto(link)
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name="Create your organization")).to_be_visible()
    expect(page.get_by_label("Registered email")).to_have_value("ana@example.com")
    page.screenshot(path=artifacts_dir / "03-create-org.png", full_page=True)

    page.get_by_label("Organization name").fill("Ana Labs")
    page.get_by_role("button", name="Create organization").click()
    expect(page.get_by_role("heading", name="Ana Labs")).to_be_visible()
    org = Organization.objects.get(name="Ana Labs")
    page.screenshot(path=artifacts_dir / "04-overview.png", full_page=True)

    page.get_by_role("link", name="Verification").click()
    expect(page.get_by_label("Organization ID")).to_have_value(org.public_id)
    expect(page.locator("#verification-tier")).to_have_text("Default")
    expect(page.locator("#verification-status")).to_have_text("Not verified")
    page.screenshot(path=artifacts_dir / "05-verification.png", full_page=True)

    page.get_by_role("link", name="Information").click()
    page.get_by_label("Legal address").fill("12 Rue de la Paix\n75002 Paris")
    page.get_by_label("Country").select_option("FR")
    page.get_by_label("Tax / registration number").fill("FR40303265045")
    page.get_by_label("Website").fill("https://ana-labs.example")
    page.get_by_role("button", name="Save information").click()
    expect(page.get_by_role("status").filter(has_text="Organization information saved.")).to_be_visible()
    expect(page.get_by_label("Tax / registration number")).to_have_value("FR40303265045")
    page.screenshot(path=artifacts_dir / "06-information-saved.png", full_page=True)

    page.reload()
    expect(page.get_by_label("Country")).to_have_value("FR")
    expect(page.get_by_label("Tax / registration number")).to_have_value("FR40303265045")
    org.refresh_from_db()
    assert org.information_complete

    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("cell", name="organization.update")).to_be_visible()
    page.screenshot(path=artifacts_dir / "07-audit-log.png", full_page=True)


def test_bad_input_shows_field_errors_in_the_browser(live_server, page: Page, artifacts_dir, user):
    from console.tests.factories import TEST_PASSWORD

    page.goto(live_server.url + "/accounts/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password:").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    expect(page.get_by_role("heading", name="Create your organization")).to_be_visible()
    name = page.get_by_label("Organization name")
    name.fill("x" * 300)
    expect(name).to_have_value("x" * 100)  # the browser stops at the field's limit
    name.fill("   ")
    page.get_by_label("Registered email").fill("not-an-email")
    page.get_by_role("button", name="Create organization").click()
    expect(page.get_by_text("This field is required.")).to_be_visible()
    expect(page.get_by_text("Enter a valid email address.")).to_be_visible()
    page.screenshot(path=artifacts_dir / "create-org-errors.png", full_page=True)
    assert not Organization.objects.exists()
