"""The only way an organization id from a URL becomes an object.

Outsiders get 404 whether the organization exists or not, so ids cannot be probed;
a member whose role is too low gets 403.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404

from console.models import User

from .models import Membership, Role


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
