"""allauth is customized here, never forked."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.http import HttpRequest
from django.urls import reverse

from orgs.invitations import SESSION_JOINED, pending_digest, remember_pending
from orgs.selectors import invitation_by_digest


class AccountAdapter(DefaultAccountAdapter):
    def _invitation_redirect(self, request: HttpRequest) -> str | None:
        # Someone who came through an invitation link goes back to it after logging in or
        # signing up: the invitation page then shows the organization they joined, or why not.
        if request.session.get(SESSION_JOINED):
            return reverse("orgs:invitation")
        digest = pending_digest(request.session)
        if digest and invitation_by_digest(digest=digest) is not None:
            return reverse("orgs:invitation")
        return None

    def get_login_redirect_url(self, request: HttpRequest) -> str:
        return self._invitation_redirect(request) or super().get_login_redirect_url(request)

    def get_signup_redirect_url(self, request: HttpRequest) -> str:
        return self._invitation_redirect(request) or super().get_signup_redirect_url(request)

    def logout(self, request: HttpRequest) -> None:
        # "Signed in with the wrong account" → sign out → sign in with the invited address:
        # the pending invitation survives the session flush so the visitor need not find the link again.
        digest = pending_digest(request.session)
        super().logout(request)
        if digest:
            remember_pending(request.session, digest)
