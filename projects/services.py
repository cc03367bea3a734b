"""Every state change of projects, project members and API keys.

Lock order, wherever several rows are locked: the organization row, then the actor's
organization membership, then project memberships, then the project, then API keys. Creating a
project or a key counts the tier-limited resource under the organization row lock, so two
concurrent creations at the limit cannot both succeed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from console.models import User
from orgs.hooks import RemovalImpact
from orgs.limits import LimitDecision
from orgs.models import Membership, Organization, Role
from orgs.services import audit_record, snapshot

from .keys import generate_raw_key, key_digest, key_hint
from .models import APIKey, Project, ProjectMembership, ProjectRole, RevocationReason
from .permissions import effective_project_role, may_revoke_any_key
from .selectors import api_key_limit, keys_revoked_by_demotion, project_limit

CENTS = Decimal("0.01")
MAX_NOTIFY_THRESHOLDS = 10
ROLL_OVERLAP_MIN = timedelta(hours=1)
ROLL_OVERLAP_MAX = timedelta(days=7)
PROJECT_INFO_FIELDS = ("name", "description")
PROJECT_LIMIT_FIELDS = (
    "monthly_budget",
    "daily_budget",
    "tpm_limit",
    "rpm_limit",
    "monthly_notify_percents",
    "daily_notify_percents",
    "notify_org_admins",
)


class ProjectError(Exception):
    """A refused change; the message is for the user, and nothing was changed."""


class LimitReached(ProjectError):
    def __init__(self, decision: LimitDecision) -> None:
        super().__init__(decision.message)
        self.decision = decision


@dataclass(frozen=True)
class CreatedKey:
    """A new key and its plaintext, which exists only in this object: show it once, never store it."""

    key: APIKey
    raw_key: str = field(repr=False)


# --- helpers ----------------------------------------------------------------------------------


def _lock_organization(organization_id: int) -> Organization:
    return Organization.objects.select_for_update().get(pk=organization_id)


def _locked_project(project: Project) -> Project:
    return Project.objects.select_for_update(of=("self",)).select_related("organization").get(pk=project.pk)


def _require_org_admin(*, actor: User, organization_id: int) -> None:
    if not Membership.objects.filter(user=actor, organization_id=organization_id, role__gte=Role.ADMIN).exists():
        raise PermissionDenied("Only organization administrators can do this.")


def _require_project_role(*, actor: User, project: Project, min_role: int) -> int:
    """Re-check the actor's role with their membership rows locked, so a concurrent removal
    either waits for this change (and then undoes it) or wins and this change is refused."""
    membership = (
        Membership.objects.select_for_update().filter(user=actor, organization_id=project.organization_id).first()
    )
    if membership is None:
        raise PermissionDenied("You are not a member of this organization.")
    project_membership = ProjectMembership.objects.select_for_update().filter(user=actor, project=project).first()
    role = effective_project_role(membership=membership, project_membership=project_membership)
    if role is None or role < min_role:
        raise PermissionDenied("Your role in this project does not allow this.")
    return role


def _refuse_if_archived(project: Project) -> None:
    if project.archived_at is not None:
        raise ProjectError("This project is archived. Restore it to change it.")


def _money(value: Decimal | None) -> Decimal | None:
    # Budgets are whole cents; the form already refuses more decimals, this keeps the rule in one place.
    return None if value is None else value.quantize(CENTS, rounding=ROUND_HALF_UP)


def _save_changed(
    *, project: Project, actor: User, action: str, before: dict[str, Any], after: dict[str, Any]
) -> None:
    """Save the fields whose snapshot changed and audit only those; no change, no write, no event."""
    changed = [name for name in after if before[name] != after[name]]
    if not changed:
        return
    project.save(update_fields=[*changed, "updated_at"])
    audit_record(
        actor=actor,
        organization=project.organization,
        action=action,
        target=project,
        before={name: before[name] for name in changed},
        after={name: after[name] for name in changed},
    )


def _limits_snapshot(project: Project) -> dict[str, Any]:
    # snapshot() would turn the threshold lists into strings; keep them as JSON lists.
    return {
        **snapshot(project, PROJECT_LIMIT_FIELDS),
        "monthly_notify_percents": list(project.monthly_notify_percents),
        "daily_notify_percents": list(project.daily_notify_percents),
    }


def validate_notify_percents(values: Iterable[int]) -> list[int]:
    """Thresholds as sorted, distinct whole percentages 1-100, at most ten; ValueError otherwise."""
    percents = sorted(set(values))
    for value in percents:
        if not 1 <= value <= 100:
            raise ValueError(f"{value} % is not between 1 and 100.")
    if len(percents) > MAX_NOTIFY_THRESHOLDS:
        raise ValueError(f"Use at most {MAX_NOTIFY_THRESHOLDS} thresholds.")
    return percents


def _revoke_keys(*, keys: QuerySet[APIKey], actor: User | None, reason: str) -> int:
    """Revoke the given keys (locked first) with one audit event each; returns how many."""
    now = timezone.now()
    revoked = 0
    for key in keys.filter(revoked_at__isnull=True).select_related("organization").select_for_update(of=("self",)):
        before = snapshot(key, ("revoked_at", "revoked_reason"))
        key.revoked_at = now
        key.revoked_by = actor
        key.revoked_reason = reason
        key.save(update_fields=["revoked_at", "revoked_by", "revoked_reason"])
        audit_record(
            actor=actor,
            organization=key.organization,
            action="api_key.revoke",
            target=key,
            before=before,
            after=snapshot(key, ("revoked_at", "revoked_reason")),
        )
        revoked += 1
    return revoked


# --- projects ---------------------------------------------------------------------------------


@transaction.atomic
def project_create(*, organization: Organization, actor: User, name: str, description: str = "") -> Project:
    """Create a project (org admins only) within the tier's project limit; the creator becomes its admin."""
    organization = _lock_organization(organization.pk)
    _require_org_admin(actor=actor, organization_id=organization.pk)
    decision = project_limit(organization=organization)
    if not decision.allowed:
        raise LimitReached(decision)
    project = Project.objects.create(
        organization=organization, name=name.strip(), description=description.strip(), created_by=actor
    )
    ProjectMembership.objects.create(project=project, user=actor, role=ProjectRole.ADMIN)
    audit_record(
        actor=actor,
        organization=organization,
        action="project.create",
        target=project,
        after=snapshot(project, PROJECT_INFO_FIELDS),
    )
    return project


@transaction.atomic
def project_update(*, project: Project, actor: User, name: str, description: str) -> Project:
    """Rename or re-describe a project (org admins); audits changed fields only."""
    _require_org_admin(actor=actor, organization_id=project.organization_id)
    project = _locked_project(project)
    _refuse_if_archived(project)
    before = snapshot(project, PROJECT_INFO_FIELDS)
    project.name = name.strip()
    project.description = description.strip()
    after = snapshot(project, PROJECT_INFO_FIELDS)
    _save_changed(project=project, actor=actor, action="project.update", before=before, after=after)
    return project


@transaction.atomic
def project_archive(*, project: Project, actor: User) -> Project:
    """Archive a project (org admins): its keys stop working at once (the gateway checks the project)."""
    _require_org_admin(actor=actor, organization_id=project.organization_id)
    project = _locked_project(project)
    if project.archived_at is not None:
        return project
    project.archived_at = timezone.now()
    project.archived_by = actor
    project.save(update_fields=["archived_at", "archived_by", "updated_at"])
    audit_record(
        actor=actor,
        organization=project.organization,
        action="project.archive",
        target=project,
        before={"archived_at": None},
        after=snapshot(project, ("archived_at",)),
    )
    return project


@transaction.atomic
def project_restore(*, project: Project, actor: User) -> Project:
    """Bring an archived project back (org admins), within the tier's project limit; its keys work again."""
    organization = _lock_organization(project.organization_id)
    _require_org_admin(actor=actor, organization_id=organization.pk)
    project = _locked_project(project)
    if project.archived_at is None:
        return project
    decision = project_limit(organization=organization)
    if not decision.allowed:
        raise LimitReached(decision)
    before = snapshot(project, ("archived_at",))
    project.archived_at = None
    project.archived_by = None
    project.save(update_fields=["archived_at", "archived_by", "updated_at"])
    audit_record(
        actor=actor,
        organization=organization,
        action="project.restore",
        target=project,
        before=before,
        after={"archived_at": None},
    )
    return project


@transaction.atomic
def project_limits_update(
    *,
    project: Project,
    actor: User,
    monthly_budget: Decimal | None,
    daily_budget: Decimal | None,
    tpm_limit: int | None,
    monthly_notify_percents: Iterable[int],
    daily_notify_percents: Iterable[int],
    notify_org_admins: bool,
    rpm_limit: int | None = None,
) -> Project:
    """Budgets, TPM and RPM limits and consumption-notification thresholds (project admins and org admins).

    A TPM or RPM above the organization's is stored as asked; the gateway applies the smaller of the two.
    """
    _require_project_role(actor=actor, project=project, min_role=ProjectRole.ADMIN)
    project = _locked_project(project)
    _refuse_if_archived(project)
    try:
        monthly_percents = validate_notify_percents(monthly_notify_percents)
        daily_percents = validate_notify_percents(daily_notify_percents)
    except ValueError as exc:
        raise ProjectError(str(exc)) from exc
    values: dict[str, Any] = {
        "monthly_budget": _money(monthly_budget),
        "daily_budget": _money(daily_budget),
        "tpm_limit": tpm_limit,
        "rpm_limit": rpm_limit,
        "monthly_notify_percents": monthly_percents,
        "daily_notify_percents": daily_percents,
        "notify_org_admins": notify_org_admins,
    }
    for budget in ("monthly_budget", "daily_budget"):
        if values[budget] is not None and values[budget] < 0:
            raise ProjectError("A budget cannot be negative.")
    if tpm_limit is not None and tpm_limit <= 0:
        raise ProjectError("The TPM limit must be a positive number of tokens.")
    if rpm_limit is not None and rpm_limit <= 0:
        raise ProjectError("The RPM limit must be a positive number of requests.")
    project.monthly_budget = _money(project.monthly_budget)
    project.daily_budget = _money(project.daily_budget)
    before = _limits_snapshot(project)
    for name, value in values.items():
        setattr(project, name, value)
    after = _limits_snapshot(project)
    _save_changed(project=project, actor=actor, action="project.limits_update", before=before, after=after)
    return project


# --- project members ----------------------------------------------------------------------------


@transaction.atomic
def project_member_add(*, project: Project, actor: User, user: User, role: int) -> ProjectMembership:
    """Add an organization member to the project (project admins and org admins)."""
    _require_project_role(actor=actor, project=project, min_role=ProjectRole.ADMIN)
    project = _locked_project(project)
    _refuse_if_archived(project)
    if role not in ProjectRole.values:
        raise ProjectError("Choose a project role.")
    if not Membership.objects.filter(user=user, organization_id=project.organization_id).exists():
        raise ProjectError("Only members of the organization can be added to its projects.")
    if ProjectMembership.objects.filter(project=project, user=user).exists():
        raise ProjectError(f"{user.email} is already a member of this project.")
    project_membership = ProjectMembership.objects.create(project=project, user=user, role=role)
    audit_record(
        actor=actor,
        organization=project.organization,
        action="project_member.add",
        target=project_membership,
        after={"user": user.email, "role": ProjectRole(role).label},
    )
    return project_membership


@transaction.atomic
def project_member_change_role(*, project_membership: ProjectMembership, actor: User, role: int) -> ProjectMembership:
    """Change a member's project role (project admins and org admins)."""
    project = project_membership.project
    _require_project_role(actor=actor, project=project, min_role=ProjectRole.ADMIN)
    if role not in ProjectRole.values:
        raise ProjectError("Choose a project role.")
    locked = (
        ProjectMembership.objects.select_for_update(of=("self",))
        .select_related("user")
        .filter(pk=project_membership.pk)
        .first()
    )
    if locked is None:
        raise ProjectError("This member is no longer in the project.")
    locked.project = project
    if locked.role == role:
        return locked
    before = {"role": ProjectRole(locked.role).label}
    locked.role = role
    locked.save(update_fields=["role"])
    audit_record(
        actor=actor,
        organization=project.organization,
        action="project_member.change_role",
        target=locked,
        before=before,
        after={"role": ProjectRole(role).label},
    )
    return locked


def _remove_from_project(*, project_membership: ProjectMembership, actor: User | None) -> int:
    """Revoke the member's keys in the project, then delete the membership; returns keys revoked."""
    revoked = _revoke_keys(
        keys=APIKey.objects.filter(project_id=project_membership.project_id, created_by_id=project_membership.user_id),
        actor=actor,
        reason=RevocationReason.MEMBER_REMOVED,
    )
    audit_record(
        actor=actor,
        organization=project_membership.project.organization,
        action="project_member.remove",
        target=project_membership,
        before={"user": project_membership.user.email, "role": ProjectRole(project_membership.role).label},
        after={"api_keys_revoked": revoked},
    )
    project_membership.delete()
    return revoked


@transaction.atomic
def project_member_remove(*, project_membership: ProjectMembership, actor: User) -> int:
    """Remove a member from the project and revoke every key they created in it, in one transaction.

    Re-adding the member later does not revive those keys. Returns the number of keys revoked.
    """
    project = project_membership.project
    _require_project_role(actor=actor, project=project, min_role=ProjectRole.ADMIN)
    locked = (
        ProjectMembership.objects.select_for_update(of=("self",))
        .select_related("user", "project__organization")
        .filter(pk=project_membership.pk)
        .first()
    )
    if locked is None:
        raise ProjectError("This member is no longer in the project.")
    return _remove_from_project(project_membership=locked, actor=actor)


# --- API keys -----------------------------------------------------------------------------------


def _issue_key(*, project: Project, owner: User, name: str, expires_at: datetime | None) -> CreatedKey:
    raw_key = generate_raw_key()
    key = APIKey.objects.create(
        organization_id=project.organization_id,
        project=project,
        created_by=owner,
        name=name.strip(),
        digest=key_digest(raw_key),
        hint=key_hint(raw_key),
        expires_at=expires_at,
    )
    audit_record(
        actor=owner,
        organization=project.organization,
        action="api_key.create",
        target=key,
        after=snapshot(key, ("name", "hint", "expires_at")),
    )
    return CreatedKey(key=key, raw_key=raw_key)


def _refuse_past_expiry(expires_at: datetime | None) -> None:
    if expires_at is not None and expires_at <= timezone.now():
        raise ProjectError("Choose an expiry date in the future.")


@transaction.atomic
def api_key_create(*, project: Project, actor: User, name: str, expires_at: datetime | None = None) -> CreatedKey:
    """Create the actor's own key in the project, within the org's key limit.

    The plaintext is returned once in CreatedKey and stored nowhere; only digest and hint are kept.
    """
    organization = _lock_organization(project.organization_id)
    _require_project_role(actor=actor, project=project, min_role=ProjectRole.MEMBER)
    project = _locked_project(project)
    _refuse_if_archived(project)
    _refuse_past_expiry(expires_at)
    if not name.strip():
        raise ProjectError("Give the key a name.")
    decision = api_key_limit(organization=organization)
    if not decision.allowed:
        raise LimitReached(decision)
    return _issue_key(project=project, owner=actor, name=name, expires_at=expires_at)


@transaction.atomic
def api_key_revoke(*, key: APIKey, actor: User) -> APIKey:
    """Revoke a key: its owner, a project admin, an org admin or platform staff (from the staff admin)
    may. Revoking twice changes nothing."""
    if not may_revoke_any_key(actor):
        role = _require_project_role(actor=actor, project=key.project, min_role=ProjectRole.MEMBER)
        if role < ProjectRole.ADMIN and key.created_by_id != actor.pk:
            raise PermissionDenied("You can only revoke your own keys.")
    _revoke_keys(keys=APIKey.objects.filter(pk=key.pk), actor=actor, reason=RevocationReason.MANUAL)
    return APIKey.objects.select_related("project", "created_by", "revoked_by").get(pk=key.pk)


def api_key_expire(*, key: APIKey, actor: User, at: datetime) -> APIKey:
    """Bring a key's expiry forward to `at` (never later than it already was). Call inside a transaction."""
    if key.expires_at is not None and key.expires_at <= at:
        return key
    before = snapshot(key, ("expires_at",))
    key.expires_at = at
    key.save(update_fields=["expires_at"])
    audit_record(
        actor=actor,
        organization=key.project.organization,
        action="api_key.expire",
        target=key,
        before=before,
        after=snapshot(key, ("expires_at",)),
    )
    return key


@transaction.atomic
def api_key_roll(
    *, key: APIKey, actor: User, overlap: timedelta, expires_at: datetime | None = None
) -> CreatedKey:
    """Replace the actor's own active key: a new key now, the old one keeps working for `overlap`
    (1 hour to 7 days) and then expires. The old key stops counting against the limit at once."""
    _lock_organization(key.organization_id)
    _require_project_role(actor=actor, project=key.project, min_role=ProjectRole.MEMBER)
    if not ROLL_OVERLAP_MIN <= overlap <= ROLL_OVERLAP_MAX:
        raise ProjectError("Choose an overlap between 1 hour and 7 days.")
    _refuse_past_expiry(expires_at)
    project = _locked_project(key.project)
    _refuse_if_archived(project)
    old = APIKey.objects.select_for_update().get(pk=key.pk)
    old.project = project
    if old.created_by_id != actor.pk:
        raise PermissionDenied("You can only roll your own keys.")
    if old.status != "active" or old.replaced_by_id is not None:
        raise ProjectError("Only an active key that has not been rolled yet can be rolled.")
    created = _issue_key(project=project, owner=actor, name=old.name, expires_at=expires_at)
    old.replaced_by = created.key
    old.save(update_fields=["replaced_by"])
    api_key_expire(key=old, actor=actor, at=timezone.now() + overlap)
    return created


# --- hooks for orgs: member removal, usage counters, invitations ------------------------------


def organization_member_removed(*, membership: Membership, actor: User | None) -> None:
    """orgs hook, inside the org removal's transaction: revoke every key the member created in any
    project of the organization and delete their project memberships, with audit events."""
    project_memberships = list(
        ProjectMembership.objects.select_for_update(of=("self",))
        .select_related("user", "project__organization")
        .filter(user_id=membership.user_id, project__organization_id=membership.organization_id)
    )
    for project_membership in project_memberships:
        _remove_from_project(project_membership=project_membership, actor=actor)
    # Keys made in projects they were never a member of (as an org admin) die as well.
    _revoke_keys(
        keys=APIKey.objects.filter(organization_id=membership.organization_id, created_by_id=membership.user_id),
        actor=actor,
        reason=RevocationReason.MEMBER_REMOVED,
    )


def organization_member_removal_impact(*, membership: Membership) -> RemovalImpact:
    """orgs hook: what removing the member from the organization will do to projects and keys."""
    keys = list(
        APIKey.objects.filter(
            organization_id=membership.organization_id, created_by_id=membership.user_id, revoked_at__isnull=True
        ).values_list("last_used_at", flat=True)
    )
    used = [last_used for last_used in keys if last_used is not None]
    return RemovalImpact(
        projects=ProjectMembership.objects.filter(
            user_id=membership.user_id, project__organization_id=membership.organization_id
        ).count(),
        api_keys=len(keys),
        api_keys_last_used_at=max(used) if used else None,
    )


def organization_member_demoted(*, membership: Membership, actor: User | None) -> None:
    """orgs hook, inside the role change's transaction: an org admin becoming a General Member keeps
    only what their project memberships give, so the keys they made in other projects are revoked."""
    _revoke_keys(
        keys=APIKey.objects.filter(pk__in=keys_revoked_by_demotion(membership=membership).values("pk")),
        actor=actor,
        reason=RevocationReason.ROLE_CHANGED,
    )


def organization_member_demotion_impact(*, membership: Membership) -> RemovalImpact:
    """orgs hook: the keys a demotion will revoke, how many projects they are in, and where (one note each)."""
    keys = list(keys_revoked_by_demotion(membership=membership))
    by_project: dict[str, list[str]] = {}
    for key in keys:
        by_project.setdefault(key.project.name, []).append(f"{key.name} ({key.hint})")
    used = [key.last_used_at for key in keys if key.last_used_at is not None]
    return RemovalImpact(
        projects=len(by_project),
        api_keys=len(keys),
        api_keys_last_used_at=max(used) if used else None,
        notes=[f"{project}: {', '.join(names)}" for project, names in by_project.items()],
    )


def invitation_project_grants_apply(*, invitation: object, membership: Membership) -> None:
    """orgs hook, inside invitation acceptance: add the new member to the invitation's projects.

    Grants name projects by public id; a project archived or gone since the invitation is skipped,
    and an existing project membership is left as it is.
    """
    grants: list[dict[str, Any]] = getattr(invitation, "project_grants", None) or []
    for grant in grants:
        # Locked, so a project being archived right now is either skipped or archived after the join.
        project = (
            Project.objects.select_for_update(of=("self",))
            .select_related("organization")
            .filter(
                organization_id=membership.organization_id, public_id=grant.get("project_id"), archived_at__isnull=True
            )
            .first()
        )
        if project is None:
            continue
        role = grant.get("role")
        if role not in ProjectRole.values:
            role = ProjectRole.MEMBER
        project_membership, created = ProjectMembership.objects.get_or_create(
            project=project, user_id=membership.user_id, defaults={"role": role}
        )
        if created:
            audit_record(
                actor=membership.user,
                organization=project.organization,
                action="project_member.add",
                target=project_membership,
                after={"user": membership.user.email, "role": ProjectRole(role).label, "via": "invitation"},
            )
