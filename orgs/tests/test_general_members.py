"""Issue 11, defect 2: a General Member sees the projects list, their projects and the organization's
name and ID, not the members list (everyone's email, 2FA state, last login) nor the organization
information (legal address, tax number, registered email)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from orgs.models import Organization, Role, VerificationStatus
from orgs.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

INFO = {"legal_address": "1 Secret Street, Berlin", "tax_number": "DE999888777", "registered_email": "ap@acme.test"}


@pytest.fixture
def acme(org):
    Organization.objects.filter(pk=org.pk).update(name="Acme", **INFO)
    org.refresh_from_db()
    return org


def nav(html: str) -> str:
    match = re.search(r'<nav class="sidenav".*?</nav>', html, re.S)
    assert match, "no organization navigation on the page"
    return match.group(0)


@pytest.mark.parametrize("url_name", ["orgs:members", "orgs:information"])
def test_a_general_member_gets_403_on_the_members_list_and_the_organization_information(client_as, acme, url_name):
    response = client_as("member").get(reverse(url_name, args=[acme.public_id]))
    assert response.status_code == 403
    body = response.content.decode()
    for secret in INFO.values():
        assert secret not in body


def test_a_general_member_sees_the_projects_list_and_the_org_name_and_id(client_as, acme):
    client = client_as("member")
    colleague = MembershipFactory(organization=acme, role=Role.ADMIN).user
    overview = client.get(reverse("orgs:overview", args=[acme.public_id])).content.decode()
    assert "Acme" in overview and acme.public_id in overview
    assert client.get(reverse("projects:list", args=[acme.public_id])).status_code == 200
    links = nav(overview)
    assert reverse("projects:list", args=[acme.public_id]) in links
    assert reverse("orgs:members", args=[acme.public_id]) not in links
    assert reverse("orgs:information", args=[acme.public_id]) not in links
    for secret in (*INFO.values(), colleague.email):
        assert secret not in overview


def test_the_verification_page_shows_a_member_the_id_but_not_the_registered_email(client_as, acme):
    Organization.objects.filter(pk=acme.pk).update(verification_status=VerificationStatus.PENDING)
    body = client_as("member").get(reverse("orgs:verification", args=[acme.public_id])).content.decode()
    assert acme.public_id in body
    assert "Pending review" in body
    assert INFO["registered_email"] not in body


def test_admins_keep_both_pages_and_their_links(client_as, acme):
    client = client_as("admin")
    overview = client.get(reverse("orgs:overview", args=[acme.public_id])).content.decode()
    links = nav(overview)
    assert reverse("orgs:members", args=[acme.public_id]) in links
    assert reverse("orgs:information", args=[acme.public_id]) in links
    members = client.get(reverse("orgs:members", args=[acme.public_id]))
    assert members.status_code == 200 and client.user.email in members.content.decode()
    information = client.get(reverse("orgs:information", args=[acme.public_id]))
    assert information.status_code == 200 and INFO["tax_number"] in information.content.decode()


def test_a_general_member_can_still_leave_the_organization(client_as, acme, membership_of):
    client = client_as("member")
    own = membership_of(client.user, acme)
    leave_url = reverse("orgs:member_remove", args=[acme.public_id, own.pk])
    assert leave_url in client.get(reverse("orgs:overview", args=[acme.public_id])).content.decode()
    response = client.get(reverse("orgs:member_remove", args=[acme.public_id, own.pk]))
    assert response.status_code == 200
    assert "Leave Acme?" in response.content.decode()
