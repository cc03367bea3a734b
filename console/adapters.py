"""allauth is customized here, never forked."""

from __future__ import annotations

import secrets
from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context as allauth_context
from django.contrib.sites.shortcuts import get_current_site

from console.services import email_enqueue_message


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
