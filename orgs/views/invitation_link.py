"""Following an invitation link: anonymous at first, not organization-scoped (the token alone
identifies the invitation); the visitor signs up or logs in, then accepts."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from console.errors import DomainError
from console.http import AuthedHttpRequest, HtmxHttpRequest

from ..exceptions import InvitationInvalid
from ..invitations import (
    SESSION_JOINED,
    forget_pending,
    invitation_token_digest,
    mask_email,
    pending_digest,
    remember_pending,
)
from ..models import Membership
from ..selectors import (
    invitation_by_digest,
    invited_projects,
    user_has_verified_email,
)
from ..services import (
    invitation_accept,
)


def invitation_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Invitation pages never leak their URL onward and are never cached."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response["Referrer-Policy"] = "no-referrer"
        response["Cache-Control"] = "no-store"
        return response

    return wrapper


def _invitation_invalid(request: HttpRequest) -> HttpResponse:
    return render(request, "orgs/invitation_invalid.html", status=404)


@invitation_page
@require_GET
def invitation_open(request: HtmxHttpRequest, token: str) -> HttpResponse:
    """The link itself: remember the invitation in the session and move the token out of the address bar."""
    digest = invitation_token_digest(token)
    if invitation_by_digest(digest=digest) is None:
        return _invitation_invalid(request)
    remember_pending(request.session, digest)
    return redirect("orgs:invitation")


@invitation_page
@require_GET
def invitation_detail(request: HtmxHttpRequest) -> HttpResponse:
    joined = request.session.pop(SESSION_JOINED, None)
    if joined:
        return redirect("orgs:overview", org_id=joined)
    digest = pending_digest(request.session)
    invitation = invitation_by_digest(digest=digest) if digest else None
    if invitation is None:
        forget_pending(request.session)
        return _invitation_invalid(request)
    organization = invitation.organization
    context: dict[str, Any] = {
        "invitation": invitation,
        "org_name": organization.name,
        "projects": invited_projects(invitation=invitation),
    }
    user = request.user
    if not user.is_authenticated:
        context["signup_url"] = reverse("account_signup") + "?" + urlencode({"email": invitation.email})
        return render(request, "orgs/invitation.html", context)
    if Membership.objects.filter(organization=organization, user=user).exists():
        forget_pending(request.session)
        context["already_member"] = True
    elif not user_has_verified_email(user=user, email=invitation.email):  # type: ignore[arg-type]
        context["wrong_email"] = mask_email(invitation.email)
    return render(request, "orgs/invitation.html", context)


@invitation_page
@login_required
@require_POST
def invitation_accept_view(request: AuthedHttpRequest) -> HttpResponse:
    digest = pending_digest(request.session)
    if digest is None:
        return _invitation_invalid(request)
    try:
        membership = invitation_accept(digest=digest, user=request.user)
    except InvitationInvalid:
        forget_pending(request.session)
        return _invitation_invalid(request)
    except DomainError as error:
        messages.error(request, error.message)
        return redirect("orgs:invitation")
    forget_pending(request.session)
    organization = membership.organization
    messages.success(request, f"Welcome to {organization.name}! You joined as {membership.get_role_display()}.")
    return redirect("orgs:overview", org_id=organization.public_id)
