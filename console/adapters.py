"""allauth is customized here, never forked."""

from __future__ import annotations

import secrets
from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context as allauth_context
from django.contrib.sites.shortcuts import get_current_site
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.urls import reverse

from console.forwarded import client_address
from console.services import email_enqueue_message
from orgs.invitations import forget_pending, pending_digest
from orgs.selectors import invitation_by_digest


class AccountAdapter(DefaultAccountAdapter):
    def send_mail(self, template_prefix: str, email: str, context: dict[str, Any]) -> None:
        """allauth's emails (verification, password reset, notices) go through the outbox.

        They are rendered here, where allauth's request and context are at hand; each request
        is a new email (a user may ask twice), hence a random part in the key.
        """
        request = allauth_context.request
        ctx = {"request": request, "email": email, "current_site": get_current_site(request), **context}
        message = self.render_mail(template_prefix, email, ctx)
        email_enqueue_message(message=message, unique_key=f"allauth:{template_prefix}:{secrets.token_hex(12)}")

    def _invitation_redirect(self, request: HttpRequest) -> str | None:
        # Someone who came through an invitation link goes back to it after logging in or
        # signing up, where joining takes their click on Accept: logging in never joins by itself.
        digest = pending_digest(request.session)
        if digest and invitation_by_digest(digest=digest) is not None:
            return reverse("orgs:invitation")
        return None

    def get_login_redirect_url(self, request: HttpRequest) -> str:
        return self._invitation_redirect(request) or super().get_login_redirect_url(request)

    def get_signup_redirect_url(self, request: HttpRequest) -> str:
        return self._invitation_redirect(request) or super().get_signup_redirect_url(request)

    def get_client_ip(self, request: HttpRequest) -> str:
        """allauth's rate limits count per client: the address our trusted proxies vouch for
        (console.forwarded), not the proxy's own (every login would share one bucket) nor a
        forwarded header anyone can send."""
        ip = client_address(request)
        if not ip:
            raise PermissionDenied("Unable to determine the client's IP address.")
        return ip

    def logout(self, request: HttpRequest) -> None:
        # A pending invitation never outlives the session it was opened in: the next person to sign
        # in on this browser must follow the link themselves (Django's flush drops it too; this
        # says so whatever the session engine keeps).
        forget_pending(request.session)
        super().logout(request)
