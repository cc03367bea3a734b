"""The only way a project, a project member or an API key id from a URL becomes an object.

Outsiders of the organization get 404, and so does an organization member who is not in the
project (the project list shows that it exists, but nothing inside it can be probed). A project
member whose role is too low gets 403. Organization admins act as project admins everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.http import Http404

from console.errors import Forbidden
from console.models import User
from orgs.models import Membership, Organization, Role
from orgs.permissions import access_organization, require_member, staff_may

from .models import APIKey, Project, ProjectMembership, ProjectRole


@dataclass(frozen=True)
class ProjectAccess:
    """Who is looking at which project, and with which effective project role."""

    membership: Membership  # the user's organization membership
    project: Project
    project_membership: ProjectMembership | None  # None for an org admin who was never added
    role: int  # effective ProjectRole: org admins count as ADMIN

    @property
    def organization(self) -> Organization:
        return self.membership.organization

    @property
    def is_admin(self) -> bool:
        return self.role >= ProjectRole.ADMIN

    @property
    def is_org_admin(self) -> bool:
        return self.membership.is_admin

    @property
    def role_label(self) -> str:
        if self.project_membership is None:
            return "Organization Administrator"
        return ProjectRole(self.role).label


def effective_project_role(*, membership: Membership, project_membership: ProjectMembership | None) -> int | None:
    """The role that counts inside a project; None means no access at all."""
    if membership.is_admin:
        return int(ProjectRole.ADMIN)
    if project_membership is None:
        return None
    return project_membership.role


def access_project(
    user: User,
    org_id: str,
    project_id: str,
    *,
    min_role: int = ProjectRole.MEMBER,
    min_org_role: int = Role.MEMBER,
) -> ProjectAccess:
    membership = access_organization(user, org_id)
    project = Project.objects.filter(organization=membership.organization, public_id=project_id).first()
    if project is None:
        raise Http404("No such project.")
    project.organization = membership.organization
    project_membership = ProjectMembership.objects.filter(project=project, user=user).first()
    role = effective_project_role(membership=membership, project_membership=project_membership)
    if role is None:
        raise Http404("No such project.")
    if membership.role < min_org_role:
        raise PermissionDenied("Only organization administrators can do this.")
    if role < min_role:
        raise PermissionDenied("Your role in this project does not allow this.")
    return ProjectAccess(membership=membership, project=project, project_membership=project_membership, role=role)


def access_api_key(access: ProjectAccess, key_id: str) -> APIKey:
    """A key of the project; 404 for any other id (keys of other projects cannot be probed)."""
    key = APIKey.objects.select_related("created_by").filter(project=access.project, public_id=key_id).first()
    if key is None:
        raise Http404("No such API key.")
    key.project = access.project
    return key


def access_project_member(access: ProjectAccess, member_id: int) -> ProjectMembership:
    project_membership = (
        ProjectMembership.objects.select_related("user").filter(project=access.project, pk=member_id).first()
    )
    if project_membership is None:
        raise Http404("No such project member.")
    project_membership.project = access.project
    return project_membership


def may_revoke_any_key(user: User) -> bool:
    """Platform staff allowed to change keys in the staff admin (e.g. to stop a leaked key)."""
    return staff_may(user, "projects.change_apikey")


# The roles table's rules for one key, given the viewer's effective project role (`ProjectAccess.role`,
# or the role a service re-checked with `require_project_role`) and the key's owner (`created_by_id`;
# plain values, so the usage breakdown can ask them of rows). Views, selectors and services ask these.


def may_see_key(*, role: int, owner_id: int, user_id: int) -> bool:
    """Project admins (and org admins) see every key of the project in full; a member only their own."""
    return role >= ProjectRole.ADMIN or owner_id == user_id


def may_revoke_key(*, role: int, owner_id: int, user_id: int) -> bool:
    """Whoever sees a key in full may revoke it: project admins any key, members their own."""
    return may_see_key(role=role, owner_id=owner_id, user_id=user_id)


def may_roll_key(*, owner_id: int, user_id: int) -> bool:
    """Rolling replaces one's own key (its state: `APIKey.is_rollable`)."""
    return owner_id == user_id


def require_project_role(*, actor: User, project: Project, min_role: int) -> int:
    """A service's re-check of the actor's effective project role, with their membership rows
    locked: a concurrent removal either waits for this change (and then undoes it) or wins and
    this change is refused. Returns the role; Forbidden when it is too low."""
    membership = require_member(actor, project.organization_id, lock=True)
    project_membership = (
        ProjectMembership.objects.select_for_update(of=("self",)).filter(user=actor, project=project).first()
    )
    role = effective_project_role(membership=membership, project_membership=project_membership)
    if role is None or role < min_role:
        raise Forbidden("Your role in this project does not allow this.")
    return role
