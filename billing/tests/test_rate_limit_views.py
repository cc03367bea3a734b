"""The live rate-limit gauges: org admins see the organization's four windows (overview, Billing),
project members their project's; the numbers move with calls, and reading them consumes nothing."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from billing.tests.factories import ProjectFactory, fund, make_api_key
from orgs.models import Role
from orgs.tests.factories import MembershipFactory
from projects.models import ProjectRole
from projects.tests.factories import ProjectMembershipFactory

pytestmark = pytest.mark.django_db


def org_url(org) -> str:
    return f"/o/{org.public_id}/rate-limits/"


def project_url(project) -> str:
    return f"/o/{project.organization.public_id}/projects/{project.public_id}/rate-limits/"


def gauges(html: str) -> dict[str, str]:
    """{gauge name: "used of limit"} as a reader sees it."""
    found = re.findall(r"<dt>(.*?)</dt>\s*<dd>\s*<span class=\"gauge-value\"><strong>(.*?)</strong> of (.*?)</span>",
                       html)
    return {name: f"{used} of {limit}" for name, used, limit in found}


@pytest.mark.parametrize(("role", "status"), [("admin", 200), ("member", 403), ("outsider", 404),
                                              ("anonymous", 302)])
def test_only_org_admins_see_the_organization_gauges(client_as, org, role, status):
    assert client_as(role).get(org_url(org)).status_code == status


def test_the_organization_gauges_move_with_calls_and_reading_consumes_nothing(client_as, org, gateway):
    fund(org, "1")  # Tier0: 1 concurrent, 3 RPM, 500,000 TPM, 1,500,000 TPD
    raw, _key = make_api_key(project=ProjectFactory(organization=org))
    admin = client_as("admin")
    before = gauges(admin.get(org_url(org)).content.decode())
    assert before == {"Concurrent requests": "0 of 1", "Requests this minute": "0 of 3",
                      "Tokens this minute": "0 of 500,000", "Tokens today (UTC)": "0 of 1,500,000"}
    assert gateway.authorize(raw, estimate=1200).status_code == 200
    for _ in range(5):  # the page refreshes itself: each read leaves the windows as they are
        page = admin.get(org_url(org), headers={"HX-Request": "true"})
    html = page.content.decode()
    assert html.lstrip().startswith('<section class="card rate-gauges" id="rate-gauges"')  # the partial only
    assert 'hx-trigger="every 3s"' in html
    assert gauges(html) == {"Concurrent requests": "1 of 1", "Requests this minute": "1 of 3",
                            "Tokens this minute": "1,200 of 500,000", "Tokens today (UTC)": "1,200 of 1,500,000"}


def test_overview_and_billing_load_the_gauges_for_admins_only(client_as, org):
    admin, member = client_as("admin"), client_as("member")
    for path in (f"/o/{org.public_id}/", f"/o/{org.public_id}/billing/"):
        assert f'hx-get="{org_url(org)}"' in admin.get(path).content.decode()
    assert org_url(org) not in member.get(f"/o/{org.public_id}/").content.decode()


def test_project_members_see_their_projects_windows(org, gateway):
    fund(org, "1")
    project = ProjectFactory(organization=org, tpm_limit=9000, rpm_limit=50)  # RPM above the org's 3: capped
    raw, _key = make_api_key(project=project)
    member = MembershipFactory(organization=org, role=Role.MEMBER).user
    ProjectMembershipFactory(project=project, user=member, role=ProjectRole.MEMBER)
    client = Client()
    client.force_login(member)
    assert f'hx-get="{project_url(project)}"' in client.get(
        f"/o/{org.public_id}/projects/{project.public_id}/").content.decode()
    assert gateway.authorize(raw, estimate=700).status_code == 200
    assert gauges(client.get(project_url(project)).content.decode()) == {
        "Requests this minute": "1 of 3", "Tokens this minute": "700 of 9,000"}
    outsider = Client()
    outsider.force_login(MembershipFactory(role=Role.ADMIN).user)
    assert outsider.get(project_url(project)).status_code == 404
    org_member = Client()
    org_member.force_login(MembershipFactory(organization=org, role=Role.MEMBER).user)
    assert org_member.get(project_url(project)).status_code in {403, 404}
