"""Members of an organization: role changes, removal and leaving, the last-used organization.

Every change to who administers an organization locks its row first (`Organization.objects.lock`),
so the last-admin rule (`permissions.is_last_admin`) cannot be raced. Downstream apps (projects)
join these transactions through `orgs.hooks`.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from console.errors import DomainError
from console.models import User

from ..audit import audit_record
from ..hooks import run_member_demotion_handlers, run_member_removal_handlers
from ..models import Membership, Organization, Role
from ..permissions import is_last_admin, may_grant, require_org_admin
from .invitations import invitation_revoke_issued_by


def membership_touch(*, membership: Membership) -> None:
    """Remember this organization as the user's last used one (at most one write a minute)."""
    now = timezone.now()
    if membership.last_used_at and now - membership.last_used_at < timedelta(minutes=1):
        return
    Membership.objects.filter(pk=membership.pk).update(last_used_at=now)
    membership.last_used_at = now


def _lock_membership(membership: Membership, organization: Organization) -> Membership:
    locked = (
        Membership.objects.select_for_update(of=("self",))
        .select_related("user")
        .filter(pk=membership.pk, organization=organization)
        .first()
    )
    if locked is None:
        raise DomainError("This person is no longer a member of the organization.", code="not_found")
    return locked


@transaction.atomic
def membership_role_change(*, membership: Membership, actor: User, role: int) -> Membership:
    """Make a member an admin or the reverse. Nobody grants above their own role; the last admin stays.

    A demoted admin loses what only the admin role gave them: the projects app, through orgs.hooks,
    revokes in the same transaction the keys they made in projects they are not a member of, and the
    invitations they sent that the new role could not grant are revoked with it.
    """
    organization = Organization.objects.lock(membership.organization_id)
    actor_role = require_org_admin(actor, organization.pk).role
    membership = _lock_membership(membership, organization)
    if role not in Role.values:
        raise DomainError("Choose a valid role.", code="invalid_role")
    if not may_grant(actor_role, role):
        raise DomainError("You cannot grant a role above your own.", code="role_above_own")
    if membership.role == role:
        return membership
    demotion = membership.is_demotion(role)
    if demotion and is_last_admin(membership):
        raise DomainError(
            f"{membership.user.display_name} is the last administrator of {organization.name}. "
            "Make someone else an administrator first.",
            code="last_admin",
        )
    if demotion:
        run_member_demotion_handlers(membership=membership, actor=actor)
    invitation_revoke_issued_by(
        membership=membership, actor=actor, new_role=role,
        reason=f"{membership.user.email} is no longer an administrator",
    )
    before = {"user": membership.user.email, "role": membership.get_role_display()}
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        actor=actor,
        organization=organization,
        action="membership.role_change",
        target=membership,
        before=before,
        after={"user": membership.user.email, "role": membership.get_role_display()},
    )
    return membership


def _last_admin_message(membership: Membership, organization: Organization, *, leaving: bool) -> str:
    if leaving:
        return (
            f"You are the last administrator of {organization.name}. "
            "Make someone else an administrator before you leave."
        )
    return f"{membership.user.display_name} is the last administrator of {organization.name}."


@transaction.atomic
def membership_remove(*, membership: Membership, actor: User) -> None:
    """Remove a member (or let them leave): they leave every project and their API keys die, all at once.

    The projects app joins this transaction through orgs.hooks; the last admin can never go. The
    invitations they sent that are still pending are revoked in the same transaction.
    """
    organization = Organization.objects.lock(membership.organization_id)
    membership = _lock_membership(membership, organization)
    leaving = membership.user_id == actor.pk
    if not leaving:
        require_org_admin(actor, organization.pk)
    if is_last_admin(membership):
        raise DomainError(_last_admin_message(membership, organization, leaving=leaving), code="last_admin")
    run_member_removal_handlers(membership=membership, actor=actor)
    invitation_revoke_issued_by(
        membership=membership, actor=actor,
        reason=f"{membership.user.email} {'left' if leaving else 'was removed from'} the organization",
    )
    audit_record(
        actor=actor,
        organization=organization,
        action="membership.leave" if leaving else "membership.remove",
        target=membership,
        before={"user": membership.user.email, "role": membership.get_role_display()},
    )
    membership.delete()
