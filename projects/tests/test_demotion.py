"""An org admin demoted to General Member loses the keys they made in projects they are not in,
through the projects app's real orgs.hooks handlers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from console.errors import DomainError
from orgs.hooks import member_demotion_impact
from orgs.models import AuditEvent, Membership, Role
from orgs.services import membership_role_change
from orgs.tests.factories import MembershipFactory
from projects.keys import api_key_authenticate
from projects.models import APIKey, ProjectRole, RevocationReason
from projects.selectors import keys_revoked_by_demotion
from projects.services import api_key_revoke
from projects.tests.factories import ProjectFactory, ProjectMembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def other_admin(org):
    return MembershipFactory(organization=org, role=Role.ADMIN).user


@pytest.fixture
def admin_keys(org, project, org_admin, make_key):
    """org_admin's keys: two in projects they were never added to, one in a project they are in."""
    search = ProjectFactory(organization=org, name="Search")
    mine = ProjectFactory(organization=org, name="Mine")
    ProjectMembershipFactory(project=mine, user=org_admin, role=ProjectRole.MEMBER)
    return {
        "chatbot": make_key(project, org_admin, "chatbot prod"),
        "search": make_key(search, org_admin, "search prod"),
        "mine": make_key(mine, org_admin, "mine"),
    }


def _demote(org_admin, actor):
    return membership_role_change(membership=Membership.objects.get(user=org_admin), actor=actor, role=Role.MEMBER)


def test_demotion_revokes_keys_in_projects_they_are_not_in(org, org_admin, other_admin, admin_keys):
    _demote(org_admin, other_admin)
    assert api_key_authenticate(admin_keys["chatbot"].raw_key).error == "revoked"
    assert api_key_authenticate(admin_keys["search"].raw_key).error == "revoked"
    assert api_key_authenticate(admin_keys["mine"].raw_key).error is None  # they are still in that project
    revoked = APIKey.objects.filter(revoked_at__isnull=False)
    assert set(revoked.values_list("revoked_reason", "revoked_by")) == {(RevocationReason.ROLE_CHANGED, other_admin.pk)}
    assert AuditEvent.objects.filter(action="api_key.revoke", actor=other_admin).count() == 2
    assert AuditEvent.objects.get(action="membership.role_change").after["role"] == "General Member"


def test_an_admin_stepping_down_loses_those_keys_too(org_admin, other_admin, admin_keys):
    _demote(org_admin, org_admin)
    assert APIKey.objects.filter(created_by=org_admin, revoked_at__isnull=True).count() == 1


def test_a_refused_demotion_revokes_nothing(org, org_admin, admin_keys):
    with pytest.raises(DomainError) as error:  # the last admin
        _demote(org_admin, org_admin)
    assert error.value.code == "last_admin"
    assert not APIKey.objects.filter(revoked_at__isnull=False).exists()


def test_promotion_and_other_peoples_keys_are_left_alone(org, project, org_admin, other_admin, admin_keys, make_key):
    colleague = make_key(project, other_admin, "colleague")
    member = MembershipFactory(organization=org, role=Role.MEMBER)
    membership_role_change(membership=member, actor=other_admin, role=Role.ADMIN)
    assert not APIKey.objects.filter(revoked_at__isnull=False).exists()
    _demote(org_admin, other_admin)
    assert api_key_authenticate(colleague.raw_key).error is None


def test_the_impact_counts_only_keys_that_will_die(org, project, org_admin, other_admin, admin_keys, make_key):
    api_key_revoke(key=admin_keys["search"].key, actor=org_admin)  # already revoked: not counted
    extra = make_key(project, org_admin, "chatbot staging")
    APIKey.objects.filter(pk=extra.key.pk).update(last_used_at=timezone.now() - timedelta(hours=3))
    elsewhere = MembershipFactory(user=org_admin, role=Role.ADMIN).organization  # their keys in another org stay
    make_key(ProjectFactory(organization=elsewhere), org_admin, "elsewhere")
    membership = Membership.objects.get(user=org_admin, organization=org)
    assert {k.name for k in keys_revoked_by_demotion(membership=membership)} == {"chatbot prod", "chatbot staging"}
    impact = member_demotion_impact(membership=membership)
    assert (impact.projects, impact.api_keys) == (1, 2)
    assert timezone.now() - impact.api_keys_last_used_at - timedelta(hours=3) < timedelta(minutes=1)
    assert len(impact.notes) == 1 and impact.notes[0].startswith("Chatbot: ")
    assert "chatbot prod (sk-" in impact.notes[0]


# --- the members page flow -----------------------------------------------------------------------


def _role_url(org, org_admin):
    return reverse("orgs:member_role", args=[org.public_id, Membership.objects.get(user=org_admin).pk])


@pytest.mark.parametrize(("role", "status"), [("outsider", 404), ("org_member", 403), ("project_admin", 403)])
def test_only_org_admins_reach_the_demotion_confirmation(org, org_admin, admin_keys, login_as, role, status):
    response = login_as(role).post(_role_url(org, org_admin), {"role": Role.MEMBER})
    assert response.status_code == status
    assert Membership.objects.get(user=org_admin).role == Role.ADMIN


def test_demoting_asks_first_and_says_how_many_keys_die(org, org_admin, other_admin, admin_keys, client):
    client.force_login(other_admin)
    response = client.post(_role_url(org, org_admin), {"role": Role.MEMBER})
    assert response.status_code == 200
    text = " ".join(response.content.decode().split())
    assert f"Make {org_admin.display_name} a General Member?" in text
    assert "revokes <strong>2 API keys</strong> they created in <strong>2 projects</strong> they are not" in text
    assert "Chatbot: chatbot prod" in text and "Search: search prod" in text
    assert "Change role and revoke 2 keys</button>" in text
    assert Membership.objects.get(user=org_admin).role == Role.ADMIN  # nothing changed yet
    assert not APIKey.objects.filter(revoked_at__isnull=False).exists()


def test_confirming_changes_the_role_and_revokes_the_keys(
    org, project, org_admin, other_admin, admin_keys, client, reauthenticate
):
    client.force_login(other_admin)
    client.user = other_admin
    reauthenticate(client)
    response = client.post(_role_url(org, org_admin), {"role": Role.MEMBER, "confirmed": "1"}, follow=True)
    assert f"{org_admin.display_name} is now General Member." in response.content.decode()
    assert Membership.objects.get(user=org_admin).role == Role.MEMBER
    assert APIKey.objects.filter(revoked_reason=RevocationReason.ROLE_CHANGED).count() == 2
    keys_page = client.get(reverse("projects:keys", args=[org.public_id, project.public_id])).content.decode()
    assert "Revoked (owner&#x27;s role changed)" in keys_page


def test_confirming_still_asks_for_the_password(org, org_admin, other_admin, admin_keys, client):
    client.force_login(other_admin)
    response = client.post(_role_url(org, org_admin), {"role": Role.MEMBER, "confirmed": "1"})
    assert response["Location"].startswith(reverse("account_reauthenticate"))
    assert Membership.objects.get(user=org_admin).role == Role.ADMIN
    assert not APIKey.objects.filter(revoked_at__isnull=False).exists()


def test_demoting_an_admin_without_such_keys_needs_no_confirmation(org, org_admin, other_admin, client, reauthenticate):
    client.force_login(other_admin)
    client.user = other_admin
    reauthenticate(client)
    response = client.post(_role_url(org, org_admin), {"role": Role.MEMBER})
    assert response.status_code == 302
    assert Membership.objects.get(user=org_admin).role == Role.MEMBER
