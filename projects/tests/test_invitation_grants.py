"""Invitations that pre-assign projects, end to end with the projects app's real orgs.hooks handlers:
the invite form lists the org's active projects, acceptance adds the invitee to them."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from console.tests.factories import UserFactory
from orgs.models import AuditEvent, Invitation, Organization, Role
from projects.models import Project, ProjectMembership, ProjectRole
from projects.services import project_archive
from projects.tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def search(ready_org: Organization) -> Project:
    return ProjectFactory(organization=ready_org, name="Search")


def _invite(client: Client, org: Organization, **extra: object):
    data = {"email": "ana@example.com", "role": Role.MEMBER, "valid_days": 7, **extra}
    return client.post(reverse("orgs:invitation_create", args=[org.public_id]), data)


def _accept_as_ana() -> Client:
    """Ana follows the emailed link, logged in with the invited address, and joins."""
    link = re.search(r"https?://\S+(/invite/inv_\S+/)", mail.outbox[-1].body).group(1)
    client = Client()
    client.force_login(UserFactory(email="ana@example.com"))
    client.get(link)
    response = client.post(reverse("orgs:invitation_accept"), follow=True)
    assert "Welcome to" in response.content.decode()
    return client


def test_invite_form_lists_only_the_orgs_active_projects(ready_org, project, search, login_as):
    ProjectFactory(organization=ready_org, name="Old stuff", archived_at=timezone.now())
    ProjectFactory(name="Foreign")
    page = login_as("org_admin").get(reverse("orgs:members", args=[ready_org.public_id])).content.decode()
    assert f'value="{project.public_id}"' in page and f'value="{search.public_id}"' in page
    assert "Project role in Chatbot" in page and "Project role in Search" in page
    assert "Old stuff" not in page and "Foreign" not in page


def test_invite_with_two_projects_then_accept_joins_both_with_the_chosen_roles(
    ready_org, project, search, login_as, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _invite(
            login_as("org_admin"),
            ready_org,
            projects=[project.public_id, search.public_id],
            **{f"project_role_{project.public_id}": ProjectRole.ADMIN, f"project_role_{search.public_id}": 10},
        )
    assert "- Chatbot as Project Administrator" in mail.outbox[-1].body
    assert "- Search as General Project Member" in mail.outbox[-1].body
    ana = _accept_as_ana()
    memberships = dict(
        ProjectMembership.objects.filter(user__email="ana@example.com").values_list("project__name", "role")
    )
    assert memberships == {"Chatbot": ProjectRole.ADMIN, "Search": ProjectRole.MEMBER}
    keys_page = ana.get(reverse("projects:keys", args=[ready_org.public_id, search.public_id]))
    assert keys_page.status_code == 200  # a General Member reaches the projects they joined
    events = AuditEvent.objects.filter(action="project_member.add", organization=ready_org)
    assert {e.after["via"] for e in events} == {"invitation"} and events.count() == 2


def test_a_project_archived_before_acceptance_is_skipped(
    ready_org, project, search, org_admin, login_as, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _invite(login_as("org_admin"), ready_org, projects=[project.public_id, search.public_id])
    project_archive(project=search, actor=org_admin)
    _accept_as_ana()
    joined = list(ProjectMembership.objects.filter(user__email="ana@example.com").values_list("project", flat=True))
    assert joined == [project.pk]


def test_a_foreign_project_in_the_post_is_a_form_error(ready_org, project, login_as):
    foreign = ProjectFactory(name="Someone else's")
    response = _invite(login_as("org_admin"), ready_org, projects=[project.public_id, foreign.public_id])
    assert response.status_code == 200
    assert "Choose among this organization&#x27;s active projects." in response.content.decode()
    assert not Invitation.objects.exists()


def test_an_archived_project_in_the_post_is_a_form_error(ready_org, project, login_as):
    archived = ProjectFactory(organization=ready_org, archived_at=timezone.now())
    response = _invite(login_as("org_admin"), ready_org, projects=[archived.public_id])
    assert "Choose among this organization&#x27;s active projects." in response.content.decode()
    assert not Invitation.objects.exists()


@pytest.mark.parametrize(("role", "status"), [("outsider", 404), ("org_member", 403), ("project_admin", 403)])
def test_only_org_admins_can_invite_into_projects(ready_org, project, login_as, role, status):
    response = _invite(login_as(role), ready_org, projects=[project.public_id])
    assert response.status_code == status
    assert not Invitation.objects.exists()
