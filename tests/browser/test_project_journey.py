"""Projects end to end in Chromium: an admin creates a project and adds a member, the member makes
a key and sees it once, the admin removes the member and the key shows as revoked."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from console.tests.factories import TEST_PASSWORD, UserFactory
from orgs.models import Role
from orgs.tests.factories import MembershipFactory, OrganizationFactory
from projects.keys import api_key_authenticate

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page: Page, base_url: str, email: str) -> None:
    page.goto(base_url + "/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password:").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    expect(page.get_by_role("navigation", name="Organization")).to_be_visible()


def test_project_key_lifecycle_across_two_users(live_server, page: Page, browser: Browser, artifacts_dir):
    org = OrganizationFactory(name="Globex")
    admin = MembershipFactory(organization=org, role=Role.ADMIN, user=UserFactory(name="Ada Admin")).user
    member = MembershipFactory(organization=org, role=Role.MEMBER, user=UserFactory(name="Max Member")).user

    # The org admin creates a project and adds the member to it.
    sign_in(page, live_server.url, admin.email)
    page.get_by_role("link", name="Projects").click()
    expect(page.get_by_role("heading", name="No projects yet")).to_be_visible()
    page.get_by_role("link", name="Create project").first.click()
    page.get_by_label("Project name").fill("Support bot")
    page.get_by_label("Description").fill("Answers customer tickets")
    page.screenshot(path=artifacts_dir / "01-create-project.png", full_page=True)
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", name="Support bot")).to_be_visible()
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Members").click()
    page.get_by_label("Organization member").select_option(label=f"Max Member ({member.email})")
    page.get_by_role("button", name="Add to project").click()
    expect(page.get_by_role("status").filter(has_text=f"{member.email} added")).to_be_visible()
    expect(page.locator("#member-table")).to_contain_text(member.email)
    page.screenshot(path=artifacts_dir / "02-member-added.png", full_page=True)

    # The member creates a key and sees its secret once.
    member_page = browser.new_page()
    member_page.set_default_timeout(10_000)
    sign_in(member_page, live_server.url, member.email)
    member_page.get_by_role("link", name="Projects").click()
    member_page.get_by_role("link", name="Support bot").click()
    member_page.get_by_role("link", name="API keys").click()
    member_page.get_by_role("link", name="Create new secret key").click()
    member_page.get_by_label("Key name").fill("ticket worker")
    member_page.screenshot(path=artifacts_dir / "03-create-key-modal.png", full_page=True)
    member_page.get_by_role("button", name="Create secret key").click()
    secret = member_page.get_by_label("New secret key", exact=True)
    expect(secret).to_have_value(re.compile(r"^sk-"))
    raw_key = secret.input_value()
    assert (api_key_authenticate(raw_key).error is None)
    member_page.screenshot(path=artifacts_dir / "04-key-shown-once.png", full_page=True)
    assert member_page.url.endswith("/keys/")  # htmx posted the form; the address is the list's
    member_page.reload()  # a fresh GET of the list: the secret is gone for good
    expect(member_page.locator("#key-table")).to_contain_text("ticket worker")
    expect(member_page.get_by_label("New secret key", exact=True)).to_have_count(0)
    assert raw_key not in member_page.content()
    member_page.close()

    # The admin removes the member: the confirmation names the key, then it shows as revoked.
    page.get_by_role("link", name=f"Remove {member.email}").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("1 API key will be revoked at once.")
    expect(dialog).to_contain_text("Never used")
    page.screenshot(path=artifacts_dir / "05-remove-confirm.png", full_page=True)
    dialog.get_by_role("button", name="Remove member and revoke 1 key").click()
    expect(page.get_by_role("status").filter(has_text="1 API key revoked")).to_be_visible()
    expect(page.locator("#member-table")).not_to_contain_text(member.email)
    page.get_by_role("navigation", name="Project").get_by_role("link", name="API keys").click()
    expect(page.locator("#key-table")).to_contain_text("Revoked (member removed)")
    page.screenshot(path=artifacts_dir / "06-key-revoked.png", full_page=True)
    assert api_key_authenticate(raw_key).error == "revoked"

    # Budget and TPM: a TPM above the organization's is kept and the page says it is capped.
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Settings").click()
    page.get_by_label("Monthly budget (USD)").fill("-5")
    page.get_by_role("button", name="Save budget and limits").click()
    expect(page.get_by_text("Ensure this value is greater than or equal to 0.")).to_be_visible()
    page.get_by_label("Monthly budget (USD)").fill("250")
    page.get_by_label("TPM limit (tokens per minute)").fill("9000000")
    page.get_by_label("Notify at these percentages of the monthly budget").fill("50, 80, 100")
    page.get_by_role("button", name="Save budget and limits").click()
    expect(page.locator("#tpm-cap-note")).to_contain_text("capped at your organization's 500,000 TPM")
    page.screenshot(path=artifacts_dir / "07-settings-tpm-capped.png", full_page=True)
    page.reload()
    expect(page.get_by_label("Monthly budget (USD)")).to_have_value("250.00")
    expect(page.get_by_label("Notify at these percentages of the monthly budget")).to_have_value("50, 80, 100")
