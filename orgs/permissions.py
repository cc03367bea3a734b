"""The only way an organization id from a URL becomes an object.

Outsiders get 404 whether the organization exists or not, so ids cannot be probed;
a member whose role is too low gets 403.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404

from console.models import User

from .models import Invitation, Membership, Role, VerificationRequest


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
    if own.role < Role.ADMIN:
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
