"""The projects app's handlers for orgs' extension points (`orgs.hooks`, registered in apps.py).

They run inside the orgs service's transaction: removing a member from the organization removes
them from every project and revokes their keys; demoting an admin revokes the keys they made in
projects they are not a member of; accepting an invitation applies its pre-assigned projects.
"""

from __future__ import annotations

from typing import Any

from console.models import User
from orgs.audit import audit_record
from orgs.hooks import RemovalImpact
from orgs.models import Membership

from ..models import APIKey, Project, ProjectMembership, ProjectRole, RevocationReason
from ..selectors import keys_revoked_by_demotion
from .api_keys import revoke_keys
from .members import remove_from_project


def organization_member_removed(*, membership: Membership, actor: User | None) -> None:
    """orgs hook, inside the org removal's transaction: revoke every key the member created in any
    project of the organization and delete their project memberships, with audit events."""
    project_memberships = list(
        ProjectMembership.objects.select_for_update(of=("self",))
        .select_related("user", "project__organization")
        .filter(user_id=membership.user_id, project__organization_id=membership.organization_id)
    )
    for project_membership in project_memberships:
        remove_from_project(project_membership=project_membership, actor=actor)
    # Keys made in projects they were never a member of (as an org admin) die as well.
    revoke_keys(
        keys=APIKey.objects.filter(organization_id=membership.organization_id, created_by_id=membership.user_id),
        actor=actor,
        reason=RevocationReason.MEMBER_REMOVED,
    )


def organization_member_removal_impact(*, membership: Membership) -> RemovalImpact:
    """orgs hook: what removing the member from the organization will do to projects and keys."""
    keys = list(
        APIKey.objects.filter(
            organization_id=membership.organization_id, created_by_id=membership.user_id
        ).unrevoked().values_list("last_used_at", flat=True)
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
    revoke_keys(
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
