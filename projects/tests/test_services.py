from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from console.errors import DomainError
from orgs.hooks import (
    member_removal_impact,
    resource_usage,
    run_invitation_accepted_handlers,
    run_member_removal_handlers,
)
from orgs.limits import LimitReached
from orgs.models import AuditEvent, Membership, Role
from orgs.tests.factories import MembershipFactory
from projects.keys import api_key_authenticate
from projects.models import APIKey, Project, ProjectMembership, ProjectRole, RevocationReason
from projects.services import (
    api_key_create,
    api_key_revoke,
    api_key_roll,
    project_archive,
    project_create,
    project_limits_update,
    project_member_add,
    project_member_change_role,
    project_member_remove,
    project_restore,
    project_update,
)
from projects.tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def actions(org):
    return list(AuditEvent.objects.filter(organization=org).order_by("id").values_list("action", flat=True))


# --- projects ---------------------------------------------------------------------------------


def test_org_admin_creates_project_and_becomes_its_admin(org, org_admin):
    project = project_create(organization=org, actor=org_admin, name="  Search  ", description="Ranking")
    assert (project.name, project.description, project.created_by) == ("Search", "Ranking", org_admin)
    assert ProjectMembership.objects.get(project=project, user=org_admin).role == ProjectRole.ADMIN
    event = AuditEvent.objects.get(action="project.create")
    assert event.after == {"name": "Search", "description": "Ranking"}


def test_org_member_cannot_create_project(org, org_member):
    with pytest.raises(PermissionDenied):
        project_create(organization=org, actor=org_member, name="Nope")
    assert not Project.objects.exists()


def test_project_limit_counts_active_projects_and_restore_respects_it(org, org_admin):
    org.projects_limit_override = 2
    org.save()
    first = project_create(organization=org, actor=org_admin, name="A")
    project_create(organization=org, actor=org_admin, name="B")
    with pytest.raises(LimitReached, match="limit of 2 projects"):
        project_create(organization=org, actor=org_admin, name="C")
    assert Project.objects.count() == 2
    assert resource_usage(organization=org, resource="projects") == 2

    project_archive(project=first, actor=org_admin)
    assert resource_usage(organization=org, resource="projects") == 1
    project_create(organization=org, actor=org_admin, name="C")
    with pytest.raises(LimitReached):
        project_restore(project=first, actor=org_admin)
    first.refresh_from_db()
    assert first.is_archived


def test_archive_stops_keys_at_once_and_restore_revives_them(org, org_admin, project, project_member, make_key):
    created = make_key(project, project_member)
    project_archive(project=project, actor=org_admin)
    assert api_key_authenticate(created.raw_key).error == "project_archived"
    with pytest.raises(DomainError, match="archived"):
        make_key(project, project_member)
    project_restore(project=project, actor=org_admin)
    assert (api_key_authenticate(created.raw_key).error is None)
    assert actions(org)[-2:] == ["project.archive", "project.restore"]


def test_only_org_admins_rename_or_archive(org, project, project_admin):
    with pytest.raises(PermissionDenied):
        project_update(project=project, actor=project_admin, name="X", description="")
    with pytest.raises(PermissionDenied):
        project_archive(project=project, actor=project_admin)


def test_rename_audits_only_changed_fields(org, org_admin, project):
    project_update(project=project, actor=org_admin, name="Chatbot v2", description=project.description)
    event = AuditEvent.objects.get(action="project.update")
    assert (event.before, event.after) == ({"name": "Chatbot"}, {"name": "Chatbot v2"})


# --- budgets and TPM -------------------------------------------------------------------------


def limits(**overrides):
    values = {
        "monthly_budget": Decimal("100"),
        "daily_budget": Decimal("5.5"),
        "tpm_limit": 90_000,
        "monthly_notify_percents": [100, 50, 80, 80],
        "daily_notify_percents": [],
        "notify_org_admins": True,
    }
    return {**values, **overrides}


def test_project_admin_sets_limits_with_audit(org, project, project_admin):
    project_limits_update(project=project, actor=project_admin, **limits())
    project.refresh_from_db()
    assert (project.monthly_budget, project.daily_budget, project.tpm_limit) == (
        Decimal("100.00"), Decimal("5.50"), 90_000,
    )
    assert project.monthly_notify_percents == [50, 80, 100]
    event = AuditEvent.objects.get(action="project.limits_update")
    assert event.before["monthly_budget"] is None
    assert event.after["monthly_budget"] == "100.00"
    assert event.after["monthly_notify_percents"] == [50, 80, 100]
    # The same values again change nothing and record nothing.
    project_limits_update(project=project, actor=project_admin, **limits())
    assert AuditEvent.objects.filter(action="project.limits_update").count() == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"monthly_budget": Decimal("-1")}, "negative"),
        ({"tpm_limit": 0}, "positive"),
        ({"daily_notify_percents": [0]}, "between 1 and 100"),
        ({"daily_notify_percents": [101]}, "between 1 and 100"),
        ({"monthly_notify_percents": list(range(1, 12))}, "at most 10"),
    ],
)
def test_bad_limits_change_nothing(org, project, project_admin, overrides, message):
    with pytest.raises(DomainError, match=message):
        project_limits_update(project=project, actor=project_admin, **limits(**overrides))
    project.refresh_from_db()
    assert project.monthly_budget is None
    assert not AuditEvent.objects.filter(action="project.limits_update").exists()


def test_project_member_cannot_set_limits(project, project_member):
    with pytest.raises(PermissionDenied):
        project_limits_update(project=project, actor=project_member, **limits())


# --- project members ---------------------------------------------------------------------------


def test_project_admin_adds_changes_and_removes_members(org, project, project_admin, org_member):
    pm = project_member_add(project=project, actor=project_admin, user=org_member, role=ProjectRole.MEMBER)
    pm = project_member_change_role(project_membership=pm, actor=project_admin, role=ProjectRole.ADMIN)
    assert ProjectMembership.objects.get(pk=pm.pk).role == ProjectRole.ADMIN
    project_member_remove(project_membership=pm, actor=project_admin)
    assert not ProjectMembership.objects.filter(user=org_member, project=project).exists()
    assert actions(org)[-3:] == ["project_member.add", "project_member.change_role", "project_member.remove"]


def test_only_org_members_can_be_added_and_only_once(project, project_admin, project_member, outsider):
    with pytest.raises(DomainError, match="Only members of the organization"):
        project_member_add(project=project, actor=project_admin, user=outsider, role=ProjectRole.MEMBER)
    with pytest.raises(DomainError, match="already a member"):
        project_member_add(project=project, actor=project_admin, user=project_member, role=ProjectRole.MEMBER)


def test_project_member_cannot_manage_members(project, project_member, org_member):
    with pytest.raises(PermissionDenied):
        project_member_add(project=project, actor=project_member, user=org_member, role=ProjectRole.MEMBER)


def test_removal_revokes_the_members_keys_in_that_project_only(
    org, org_admin, project, project_member, project_admin, make_key
):
    other_project = ProjectFactory(organization=org)
    ProjectMembership.objects.create(project=other_project, user=project_member)
    mine = make_key(project, project_member, "mine")
    elsewhere = make_key(other_project, project_member, "elsewhere")
    colleague = make_key(project, project_admin, "colleague")
    pm = ProjectMembership.objects.get(project=project, user=project_member)

    assert project_member_remove(project_membership=pm, actor=org_admin) == 1
    key = APIKey.objects.get(pk=mine.key.pk)
    assert (key.revoked_reason, key.revoked_by, key.status_label) == (
        RevocationReason.MEMBER_REMOVED, org_admin, "Revoked (member removed)",
    )
    assert api_key_authenticate(mine.raw_key).error == "revoked"
    assert (api_key_authenticate(elsewhere.raw_key).error is None)
    assert (api_key_authenticate(colleague.raw_key).error is None)

    # Re-adding the member does not bring the old key back.
    project_member_add(project=project, actor=org_admin, user=project_member, role=ProjectRole.MEMBER)
    assert api_key_authenticate(mine.raw_key).error == "revoked"


def test_org_removal_revokes_keys_in_every_project(org, org_admin, project, project_member, make_key):
    other_project = ProjectFactory(organization=org)
    ProjectMembership.objects.create(project=other_project, user=project_member)
    keys = [make_key(project, project_member), make_key(other_project, project_member)]
    APIKey.objects.filter(pk=keys[1].key.pk).update(last_used_at=timezone.now() - timedelta(hours=2))
    membership = Membership.objects.get(user=project_member, organization=org)

    impact = member_removal_impact(membership=membership)
    assert (impact.projects, impact.api_keys) == (2, 2)
    assert impact.api_keys_last_used_at is not None

    with transaction.atomic():  # what orgs' membership removal does
        run_member_removal_handlers(membership=membership, actor=org_admin)
        membership.delete()
    assert all(api_key_authenticate(k.raw_key).error == "revoked" for k in keys)
    assert set(APIKey.objects.values_list("revoked_reason", flat=True)) == {RevocationReason.MEMBER_REMOVED}
    assert not ProjectMembership.objects.filter(user=project_member).exists()
    assert actions(org).count("project_member.remove") == 2


def test_invitation_grants_add_the_new_member_to_projects(org, org_admin, project):
    archived = ProjectFactory(organization=org, archived_at=timezone.now())
    foreign = ProjectFactory()
    membership = MembershipFactory(organization=org, role=Role.MEMBER)
    invitation = SimpleNamespace(
        project_grants=[
            {"project_id": project.public_id, "role": int(ProjectRole.ADMIN)},
            {"project_id": archived.public_id, "role": int(ProjectRole.MEMBER)},
            {"project_id": foreign.public_id, "role": int(ProjectRole.MEMBER)},
        ]
    )
    run_invitation_accepted_handlers(invitation=invitation, membership=membership)
    assert list(ProjectMembership.objects.filter(user=membership.user).values_list("project", "role")) == [
        (project.pk, ProjectRole.ADMIN)
    ]
    run_invitation_accepted_handlers(invitation=SimpleNamespace(), membership=membership)  # no grants: fine


# --- API keys ------------------------------------------------------------------------------------


def test_create_key_returns_plaintext_once_and_stores_only_digest(org, project, project_member):
    created = api_key_create(project=project, actor=project_member, name="prod")
    assert created.raw_key not in repr(created)
    key = APIKey.objects.get(pk=created.key.pk)
    assert key.digest != created.raw_key
    assert key.hint == f"sk-…{created.raw_key[-4:]}"
    assert key.created_by == project_member
    assert api_key_authenticate(created.raw_key).key == key
    event = AuditEvent.objects.get(action="api_key.create")
    assert created.raw_key not in str(event.after)
    assert created.raw_key[4:20] not in str(AuditEvent.objects.values_list("after", "before", "target_label"))


def test_org_member_outside_the_project_cannot_create_keys(project, org_member):
    with pytest.raises(PermissionDenied):
        api_key_create(project=project, actor=org_member, name="x")


def test_expiry_must_be_in_the_future_and_is_enforced(project, project_member, make_key):
    with pytest.raises(DomainError, match="future"):
        make_key(project, project_member, expires_at=timezone.now() - timedelta(minutes=1))
    created = make_key(project, project_member, expires_at=timezone.now() + timedelta(days=1))
    APIKey.objects.filter(pk=created.key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert api_key_authenticate(created.raw_key).error == "expired"
    assert APIKey.objects.get(pk=created.key.pk).status_label == "Expired"


def test_key_limit_is_org_wide(org, project, project_member, org_admin, make_key):
    org.api_keys_limit_override = 2
    org.save()
    other = ProjectFactory(organization=org)
    first = make_key(project, project_member)
    make_key(other, org_admin)
    with pytest.raises(LimitReached, match="limit of 2 API keys"):
        make_key(project, project_member)
    assert APIKey.objects.count() == 2
    api_key_revoke(key=first.key, actor=project_member)
    make_key(project, project_member)  # a revoked key frees its place
    assert resource_usage(organization=org, resource="api_keys") == 2


def test_member_revokes_own_key_but_not_others(org, project, project_member, project_admin, make_key):
    mine = make_key(project, project_member)
    theirs = make_key(project, project_admin)
    with pytest.raises(PermissionDenied):
        api_key_revoke(key=theirs.key, actor=project_member)
    key = api_key_revoke(key=mine.key, actor=project_member)
    assert (key.status, key.revoked_by, key.revoked_reason) == ("revoked", project_member, RevocationReason.MANUAL)
    assert api_key_authenticate(mine.raw_key).error == "revoked"
    api_key_revoke(key=mine.key, actor=project_member)  # twice: harmless, one audit event
    assert actions(org).count("api_key.revoke") == 1


@pytest.mark.parametrize("revoker", ["project_admin", "org_admin"])
def test_admins_revoke_any_key(project, project_member, make_key, user_for, revoker):
    created = make_key(project, project_member)
    assert api_key_revoke(key=created.key, actor=user_for(revoker)).status == "revoked"


def test_roll_keeps_the_old_key_for_the_overlap_then_it_expires(org, project, project_member, make_key):
    org.api_keys_limit_override = 1
    org.save()
    old = make_key(project, project_member, "prod")
    new = api_key_roll(key=old.key, actor=project_member, overlap=timedelta(hours=1))  # allowed at the limit
    assert new.key.name == "prod"
    assert (api_key_authenticate(old.raw_key).error is None)
    assert (api_key_authenticate(new.raw_key).error is None)
    rolled = APIKey.objects.get(pk=old.key.pk)
    assert rolled.replaced_by == new.key
    assert timedelta(minutes=59) < rolled.expires_at - timezone.now() <= timedelta(hours=1)
    with pytest.raises(DomainError, match="not been rolled"):
        api_key_roll(key=rolled, actor=project_member, overlap=timedelta(hours=1))

    APIKey.objects.filter(pk=old.key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert api_key_authenticate(old.raw_key).error == "expired"
    assert APIKey.objects.get(pk=old.key.pk).status_label == "Expired (rolled)"
    assert "api_key.expire" in actions(org)


@pytest.mark.parametrize("overlap", [timedelta(minutes=59), timedelta(days=7, seconds=1)])
def test_roll_overlap_must_be_between_one_hour_and_seven_days(project, project_member, make_key, overlap):
    old = make_key(project, project_member)
    with pytest.raises(DomainError, match="between 1 hour and 7 days"):
        api_key_roll(key=old.key, actor=project_member, overlap=overlap)
    assert APIKey.objects.count() == 1


def test_only_the_owner_rolls_a_key(project, project_member, project_admin, make_key):
    old = make_key(project, project_member)
    with pytest.raises(PermissionDenied):
        api_key_roll(key=old.key, actor=project_admin, overlap=timedelta(hours=1))
