"""Projects: create, rename, archive and restore (org admins); budgets, TPM and notifications.

Lock order, wherever several rows are locked: the organization row, then the actor's
organization membership, then project memberships, then the project, then API keys. Creating
or restoring a project counts active projects under the organization row lock, so two
concurrent creations at the limit cannot both succeed.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from console.errors import DomainError
from console.models import User
from console.money import cents
from orgs.audit import audit_record, snapshot
from orgs.limits import LimitReached
from orgs.models import Organization
from orgs.permissions import require_org_admin

from ..models import Project, ProjectMembership, ProjectRole, notify_percents_clean
from ..permissions import require_project_role
from ..selectors import project_limit

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


def refuse_if_archived(project: Project) -> None:
    if project.archived_at is not None:
        raise DomainError("This project is archived. Restore it to change it.", code="project_archived")


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


@transaction.atomic
def project_create(*, organization: Organization, actor: User, name: str, description: str = "") -> Project:
    """Create a project (org admins only) within the tier's project limit; the creator becomes its admin."""
    organization = Organization.objects.lock(organization.pk)
    require_org_admin(actor, organization.pk)
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
    require_org_admin(actor, project.organization_id)
    project = Project.objects.lock(project.pk)
    refuse_if_archived(project)
    before = snapshot(project, PROJECT_INFO_FIELDS)
    project.name = name.strip()
    project.description = description.strip()
    after = snapshot(project, PROJECT_INFO_FIELDS)
    _save_changed(project=project, actor=actor, action="project.update", before=before, after=after)
    return project


@transaction.atomic
def project_archive(*, project: Project, actor: User) -> Project:
    """Archive a project (org admins): its keys stop working at once (the gateway checks the project)."""
    require_org_admin(actor, project.organization_id)
    project = Project.objects.lock(project.pk)
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
    organization = Organization.objects.lock(project.organization_id)
    require_org_admin(actor, organization.pk)
    project = Project.objects.lock(project.pk)
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
    require_project_role(actor=actor, project=project, min_role=ProjectRole.ADMIN)
    project = Project.objects.lock(project.pk)
    refuse_if_archived(project)
    monthly_percents = notify_percents_clean(monthly_notify_percents)
    daily_percents = notify_percents_clean(daily_notify_percents)
    values: dict[str, Any] = {
        "monthly_budget": cents(monthly_budget),
        "daily_budget": cents(daily_budget),
        "tpm_limit": tpm_limit,
        "rpm_limit": rpm_limit,
        "monthly_notify_percents": monthly_percents,
        "daily_notify_percents": daily_percents,
        "notify_org_admins": notify_org_admins,
    }
    for budget in ("monthly_budget", "daily_budget"):
        if values[budget] is not None and values[budget] < 0:
            raise DomainError("A budget cannot be negative.", code="invalid_budget")
    if tpm_limit is not None and tpm_limit <= 0:
        raise DomainError("The TPM limit must be a positive number of tokens.", code="invalid_tpm")
    if rpm_limit is not None and rpm_limit <= 0:
        raise DomainError("The RPM limit must be a positive number of requests.", code="invalid_rpm")
    project.monthly_budget = cents(project.monthly_budget)
    project.daily_budget = cents(project.daily_budget)
    before = _limits_snapshot(project)
    for name, value in values.items():
        setattr(project, name, value)
    after = _limits_snapshot(project)
    _save_changed(project=project, actor=actor, action="project.limits_update", before=before, after=after)
    return project
