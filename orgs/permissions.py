"""The only way an organization id from a URL becomes an object, and the role rules services re-check.

Outsiders get 404 whether the organization exists or not, so ids cannot be probed;
a member whose role is too low gets 403. `require_member` / `require_org_admin` are what every
service calls to re-check its actor (views have checked already, but a role may have changed
since); `is_last_admin` is the rule that an organization always keeps an administrator.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404

from console.errors import Forbidden
from console.models import User

from .models import Invitation, Membership, Role, VerificationRequest, is_admin_role


def access_organization(user: User, org_id: str, *, min_role: int = Role.MEMBER) -> Membership:
    """Return the user's membership in the organization (with the organization loaded)."""
    if not user.is_authenticated:
        raise Http404("No such organization.")
    membership = (
        Membership.objects.select_related("organization")
        .filter(user=user, organization__public_id=org_id)
        .first()
    )
    if membership is None:
        raise Http404("No such organization.")
    if membership.role < min_role:
        raise PermissionDenied("Your role in this organization does not allow this.")
    return membership


def access_member(user: User, org_id: str, membership_id: int) -> tuple[Membership, Membership]:
    """(the user's membership, the member reached from the URL). Anyone may act on themselves
    (leave); acting on someone else takes an admin. Members of other organizations are 404."""
    own = access_organization(user, org_id)
    target = (
        Membership.objects.select_related("user", "organization")
        .filter(pk=membership_id, organization=own.organization)
        .first()
    )
    if target is None:
        raise Http404("No such member.")
    if target.pk == own.pk:
        return own, target
    if not own.is_admin:
        raise PermissionDenied("Only organization administrators can manage members.")
    return own, target


def access_invitation(user: User, org_id: str, invitation_id: int) -> tuple[Membership, Invitation]:
    own = access_organization(user, org_id, min_role=Role.ADMIN)
    invitation = (
        Invitation.objects.select_related("organization")
        .filter(pk=invitation_id, organization=own.organization)
        .first()
    )
    if invitation is None:
        raise Http404("No such invitation.")
    return own, invitation


def access_verification_document(user: User, org_id: str, request_id: int) -> VerificationRequest:
    """Staff, and the organization's admins: nobody else ever sees a verification document."""
    if user.is_authenticated and user.is_active and user.is_staff:
        request = (
            VerificationRequest.objects.filter(pk=request_id, organization__public_id=org_id).first()
        )
        if request is None:
            raise Http404("No such document.")
        return request
    own = access_organization(user, org_id, min_role=Role.ADMIN)
    request = VerificationRequest.objects.filter(pk=request_id, organization=own.organization).first()
    if request is None:
        raise Http404("No such document.")
    return request


def require_member(actor: User, organization_id: int, *, lock: bool = False) -> Membership:
    """A service's re-check: the actor's membership (row-locked with `lock`), else Forbidden."""
    memberships = Membership.objects.filter(user=actor, organization_id=organization_id)
    if lock:
        memberships = memberships.select_for_update(of=("self",))
    membership = memberships.first()
    if membership is None:
        raise Forbidden("You are not a member of this organization.", code="not_member")
    return membership


def require_org_admin(actor: User, organization_id: int) -> Membership:
    """A service's re-check that the actor is an Organization Administrator, else Forbidden."""
    membership = require_member(actor, organization_id)
    if not membership.is_admin:
        raise Forbidden("Only organization administrators can do this.", code="not_admin")
    return membership


def is_last_admin(membership: Membership) -> bool:
    """Would the organization be left without an administrator if this member left or were demoted?

    Services ask it with the organization row locked (`Organization.objects.lock`), so two admins
    demoting each other at the same moment cannot both succeed.
    """
    others = Membership.objects.admins().filter(organization_id=membership.organization_id).exclude(pk=membership.pk)
    return membership.is_admin and not others.exists()


def may_grant(issuer_role: int | None, role: int) -> bool:
    """May a member with `issuer_role` (None: not a member) hand out `role`, i.e. issue an invitation
    or keep one alive? Only administrators invite, and nobody grants above their own role."""
    return issuer_role is not None and is_admin_role(issuer_role) and issuer_role >= role


def staff_may(user: User, permission: str) -> bool:
    """Platform staff holding `permission` act from the staff admin where members cannot."""
    return bool(user.is_active and user.is_staff and user.has_perm(permission))


def require_staff(actor: User | None, permission: str) -> None:
    """A staff service's re-check: a person acting must be staff holding `permission`, else
    Forbidden. `None` is the platform itself (a management command, a job), which may."""
    if actor is not None and not staff_may(actor, permission):
        raise Forbidden("Only platform staff can do this.", code="not_staff")
