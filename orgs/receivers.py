"""allauth's events, hooked to call a service (the one place orgs listens to a signal).

A visitor who followed an invitation link carries its digest in the session; when they log in
(after signing up and verifying their email, or with an existing account) they join at once.
"""

from __future__ import annotations

from typing import Any

from allauth.account.signals import user_logged_in
from django.contrib import messages
from django.dispatch import receiver
from django.http import HttpRequest

from console.errors import DomainError
from console.models import User

from .exceptions import InvitationInvalid
from .invitations import SESSION_JOINED, forget_pending, pending_digest
from .services import invitation_accept


@receiver(user_logged_in, dispatch_uid="orgs.join_pending_invitation")
def join_pending_invitation(sender: type, request: HttpRequest, user: User, **kwargs: Any) -> None:
    digest = pending_digest(request.session)
    if digest is None:
        return
    try:
        membership = invitation_accept(digest=digest, user=user)
    except InvitationInvalid:
        forget_pending(request.session)
        return
    except DomainError:
        return  # wrong address or already a member: the invitation page explains
    forget_pending(request.session)
    organization = membership.organization
    request.session[SESSION_JOINED] = organization.public_id
    messages.success(request, f"Welcome to {organization.name}! You joined as {membership.get_role_display()}.")
