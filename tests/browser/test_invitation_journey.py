"""The invitation journey in real Chromium: an admin invites, the invitee signs up through the link."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from playwright.sync_api import Page, expect

from console.tests.factories import TEST_PASSWORD, UserFactory
from orgs.models import Invitation, Membership, Role
from orgs.services import invitation_create
from orgs.tests.factories import MembershipFactory, OrganizationFactory
from projects.models import ProjectMembership, ProjectRole
from projects.tests.factories import ProjectFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _verified_org_with_admin():
    org = OrganizationFactory(name="Globex Research", ready_to_invite=True)
    admin = UserFactory(email="admin@globex.test", name="Hank Scorpio")
    MembershipFactory(organization=org, user=admin, role=Role.ADMIN)
    return org, admin


def _log_in(page: Page, base: str, email: str) -> None:
    page.goto(base + "/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password:").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign In").click()


def test_admin_invites_and_the_invitee_signs_up_and_joins(live_server, page: Page, new_context, artifacts_dir):
    org, admin = _verified_org_with_admin()
    ProjectFactory(organization=org, name="Globex API")
    ProjectFactory(organization=org, name="Globex Labs")
    base = live_server.url
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)

    _log_in(page, base, admin.email)
    page.get_by_role("link", name="Members").click()
    expect(page.get_by_role("heading", name="Members", exact=True)).to_be_visible()
    page.get_by_label("Email address").fill("newbie@example.com")
    page.get_by_label("Link valid for (days)").fill("5")
    # Choosing a project role ticks the project (the checkbox alone would give General Project Member).
    page.get_by_label("Project role in Globex API").select_option(label="Project Administrator")
    expect(page.get_by_role("checkbox", name="Globex API")).to_be_checked()
    expect(page.get_by_role("checkbox", name="Globex Labs")).not_to_be_checked()
    page.get_by_role("button", name="Send invitation").click()
    link_field = page.get_by_label("Invitation link")
    expect(link_field).to_have_value(re.compile(r"/invite/inv_[A-Za-z0-9_\-]{43}/$"))
    expect(page.get_by_role("status").filter(has_text="Invitation for newbie@example.com created")).to_be_visible()
    page.get_by_role("button", name="Copy link").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    link = page.evaluate("navigator.clipboard.readText()")
    assert link == link_field.input_value()
    invited_row = page.locator("#invitation-list tbody tr").filter(has_text="newbie@example.com")
    expect(invited_row).to_contain_text("Joins Globex API")
    page.screenshot(path=artifacts_dir / "01-admin-invited.png", full_page=True)
    assert link.replace(base, "") in mail.outbox[-1].body  # the same link went out by email

    invitee = new_context()
    try:
        other = invitee.new_page()
        other.set_default_timeout(10_000)
        other.goto(link)
        expect(other.get_by_role("heading", name="Join Globex Research")).to_be_visible()
        expect(other.get_by_text("Hank Scorpio")).to_be_visible()
        expect(other.locator("#invited-projects")).to_contain_text("Globex API as Project Administrator")
        expect(other.locator("#invited-projects")).not_to_contain_text("Globex Labs")
        assert "inv_" not in other.url  # the token left the address bar
        other.screenshot(path=artifacts_dir / "02-invitation-page.png", full_page=True)

        other.get_by_role("link", name="Create account").click()
        expect(other.get_by_label("Email")).to_have_value("newbie@example.com")
        other.get_by_label("Password:", exact=True).fill("a-long-Pass-phrase-42")
        other.get_by_label("Password (again):").fill("a-long-Pass-phrase-42")
        other.screenshot(path=artifacts_dir / "03-signup-prefilled.png", full_page=True)
        other.get_by_role("button", name="Sign Up").click()
        expect(other.get_by_role("heading", name="Verify Your Email Address")).to_be_visible()
        assert not Membership.objects.filter(user__email="newbie@example.com").exists()

        confirm = re.search(r"https?://\S+/accounts/confirm-email/\S+/", mail.outbox[-1].body).group(0)
        other.goto(confirm.replace("http://testserver", base))
        other.get_by_role("button", name="Confirm").click()
        # Signed in now, but not a member until the invitee accepts (issue 11: no join without a click).
        expect(other.get_by_role("heading", name="Join Globex Research")).to_be_visible()
        assert not Membership.objects.filter(user__email="newbie@example.com").exists()
        other.screenshot(path=artifacts_dir / "04-accept-after-sign-up.png", full_page=True)
        other.get_by_role("button", name="Join Globex Research").click()
        expect(other.get_by_role("heading", name="Globex Research")).to_be_visible()
        expect(other.get_by_role("status").filter(has_text="Welcome to Globex Research!")).to_be_visible()
        expect(other.locator(".page-header .badge")).to_have_text("General Member")
        nav = other.get_by_role("navigation", name="Organization")
        expect(nav.get_by_role("link", name="Billing")).to_have_count(0)
        expect(nav.get_by_role("link", name="Audit log")).to_have_count(0)
        # A General Member sees the projects, the org's name and ID; not the members or the org information.
        expect(nav.get_by_role("link", name="Projects")).to_be_visible()
        expect(nav.get_by_role("link", name="Members")).to_have_count(0)
        expect(nav.get_by_role("link", name="Information")).to_have_count(0)
        expect(other.get_by_text(org.public_id)).to_be_visible()
        other.screenshot(path=artifacts_dir / "05-joined-as-member.png", full_page=True)
        assert other.goto(f"{base}/o/{org.public_id}/members/").status == 403
        assert Membership.objects.get(user__email="newbie@example.com").role == Role.MEMBER
        joined = ProjectMembership.objects.filter(user__email="newbie@example.com")
        assert list(joined.values_list("project__name", "role")) == [("Globex API", ProjectRole.ADMIN)]

        expired = invitation_create(organization=org, actor=admin, email="late@example.com", role=Role.MEMBER)
        Invitation.objects.filter(pk=expired.invitation.pk).update(expires_at=timezone.now() - timedelta(hours=1))
        other.goto(base + expired.path)
        expect(other.get_by_role("heading", name="Invitation not valid")).to_be_visible()
        expect(
            other.get_by_text("This invitation link is no longer valid — ask your administrator for a new one.")
        ).to_be_visible()
        other.screenshot(path=artifacts_dir / "06-expired-link.png", full_page=True)

        other.goto(link)  # used: the same neutral page
        expect(other.get_by_role("heading", name="Invitation not valid")).to_be_visible()
    finally:
        invitee.close()

    page.reload()
    row = page.locator("#invitation-list tbody tr").filter(has_text="newbie@example.com")
    expect(row.locator(".badge")).to_have_text("Accepted")
    page.screenshot(path=artifacts_dir / "07-admin-sees-accepted.png", full_page=True)
