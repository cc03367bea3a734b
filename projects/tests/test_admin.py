"""Staff admin: projects, project members and API keys, read-only, with one action (revoke keys)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from console.tests.factories import UserFactory
from orgs.models import AuditEvent
from projects.keys import api_key_authenticate
from projects.models import APIKey, Project, RevocationReason

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client: Client) -> Client:
    staff = UserFactory(is_staff=True, is_superuser=True, email="ops@console.test")
    client.force_login(staff)
    client.user = staff  # type: ignore[attr-defined]
    return client


def _revoke(client, *keys):
    return client.post(
        reverse("admin:projects_apikey_changelist"),
        {"action": "revoke_selected", "_selected_action": [k.pk for k in keys]},
        follow=True,
    )


def test_project_list_shows_org_archived_and_budgets(staff_client, org, project):
    Project.objects.filter(pk=project.pk).update(monthly_budget=Decimal("250.00"), daily_budget=Decimal("20.00"))
    page = staff_client.get(reverse("admin:projects_project_changelist")).content.decode()
    assert "Chatbot" in page and org.name in page
    assert "250.00" in page and "20.00" in page
    assert "/admin/projects/project/add/" not in page  # projects are created in the console


def test_project_page_is_read_only_and_lists_members(staff_client, project, project_member):
    page = staff_client.get(reverse("admin:projects_project_change", args=[project.pk])).content.decode()
    assert project_member.email in page
    assert 'name="_save"' not in page
    assert staff_client.post(reverse("admin:projects_project_delete", args=[project.pk])).status_code == 403
    assert Project.objects.filter(pk=project.pk).exists()


def test_project_memberships_are_listed(staff_client, project, project_admin):
    page = staff_client.get(reverse("admin:projects_projectmembership_changelist")).content.decode()
    assert project_admin.email in page and "Project Administrator" in page


def test_key_pages_never_show_the_digest(staff_client, project, project_member, make_key):
    created = make_key(project, project_member, name="backend prod")
    key = created.key
    listing = staff_client.get(reverse("admin:projects_apikey_changelist")).content.decode()
    assert "backend prod" in listing and key.hint in listing and project_member.email in listing
    assert "Active" in listing
    assert "Revoke selected keys" in listing
    detail = staff_client.get(reverse("admin:projects_apikey_change", args=[key.pk])).content.decode()
    assert key.hint in detail
    assert key.digest not in listing + detail
    assert created.raw_key not in listing + detail
    assert 'name="_save"' not in detail


def test_revoke_action_runs_the_service_as_the_staff_user(staff_client, org, project, project_member, make_key):
    first = make_key(project, project_member, name="one")
    second = make_key(project, project_member, name="two")
    kept = make_key(project, project_member, name="kept")
    response = _revoke(staff_client, first.key, second.key)
    assert "Revoked 2 key(s)" in response.content.decode()
    assert api_key_authenticate(first.raw_key).error == "revoked"
    assert api_key_authenticate(second.raw_key).error == "revoked"
    assert api_key_authenticate(kept.raw_key).error is None
    revoked = APIKey.objects.get(pk=first.key.pk)
    assert (revoked.revoked_by, revoked.revoked_reason) == (staff_client.user, RevocationReason.MANUAL)
    events = AuditEvent.objects.filter(action="api_key.revoke", organization=org)
    assert {e.actor_label for e in events} == {"ops@console.test"}
    assert events.count() == 2


def test_revoking_an_already_revoked_key_changes_nothing(staff_client, project, project_member, make_key):
    created = make_key(project, project_member)
    _revoke(staff_client, created.key)
    response = _revoke(staff_client, created.key)
    assert "Revoked 0 key(s)" in response.content.decode()
    assert "1 already revoked" in response.content.decode()
    assert AuditEvent.objects.filter(action="api_key.revoke").count() == 1


def test_staff_with_view_permission_only_cannot_revoke(client, project, project_member, make_key):
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_apikey"))
    client.force_login(viewer)
    created = make_key(project, project_member)
    listing = client.get(reverse("admin:projects_apikey_changelist")).content.decode()
    assert created.key.hint in listing
    assert "revoke_selected" not in listing
    _revoke(client, created.key)
    assert api_key_authenticate(created.raw_key).error is None


def test_non_staff_are_sent_to_the_admin_login(project, login_as):
    response = login_as("org_admin").get(reverse("admin:projects_apikey_changelist"))
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_the_revoke_service_lets_staff_in_only_with_the_key_permission(project, project_member, make_key):
    from django.core.exceptions import PermissionDenied

    from projects.services import api_key_revoke

    created = make_key(project, project_member)
    with pytest.raises(PermissionDenied):
        api_key_revoke(key=created.key, actor=UserFactory(is_staff=True))  # staff, but no permission
    with pytest.raises(PermissionDenied):
        api_key_revoke(key=created.key, actor=UserFactory(is_superuser=True))  # not staff (cannot log in here)
    assert api_key_authenticate(created.raw_key).error is None
    api_key_revoke(key=created.key, actor=UserFactory(is_staff=True, is_superuser=True))
    assert api_key_authenticate(created.raw_key).error == "revoked"
