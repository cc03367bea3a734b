"""Project members: add organization members, change their project role, remove them.

Removing a member revokes every key they created in the project, in the same transaction.
"""

from __future__ import annotations

from django.db import transaction

from console.errors import DomainError
from console.models import User
from orgs.audit import audit_record
from orgs.models import Membership

from ..models import APIKey, Project, ProjectMembership, ProjectRole, RevocationReason
from ..permissions import require_project_role
from .api_keys import revoke_keys
from .projects import refuse_if_archived


@transaction.atomic
def project_member_add(*, project: Project, actor: User, user: User, role: int) -> ProjectMembership:
    """Add an organization member to the project (project admins and org admins)."""
    require_project_role(actor=actor, project=project, min_role=ProjectRole.ADMIN)
    project = Project.objects.lock(project.pk)
    refuse_if_archived(project)
    if role not in ProjectRole.values:
        raise DomainError("Choose a project role.", code="invalid_role")
    if not Membership.objects.filter(user=user, organization_id=project.organization_id).exists():
        raise DomainError("Only members of the organization can be added to its projects.", code="not_org_member")
    if ProjectMembership.objects.filter(project=project, user=user).exists():
        raise DomainError(f"{user.email} is already a member of this project.", code="already_member")
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
    require_project_role(actor=actor, project=project, min_role=ProjectRole.ADMIN)
    if role not in ProjectRole.values:
        raise DomainError("Choose a project role.", code="invalid_role")
    locked = (
        ProjectMembership.objects.select_for_update(of=("self",))
        .select_related("user")
        .filter(pk=project_membership.pk)
        .first()
    )
    if locked is None:
        raise DomainError("This member is no longer in the project.", code="not_found")
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


def remove_from_project(*, project_membership: ProjectMembership, actor: User | None) -> int:
    """Revoke the member's keys in the project, then delete the membership; returns keys revoked."""
    revoked = revoke_keys(
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
    require_project_role(actor=actor, project=project, min_role=ProjectRole.ADMIN)
    locked = (
        ProjectMembership.objects.select_for_update(of=("self",))
        .select_related("user", "project__organization")
        .filter(pk=project_membership.pk)
        .first()
    )
    if locked is None:
        raise DomainError("This member is no longer in the project.", code="not_found")
    return remove_from_project(project_membership=locked, actor=actor)
