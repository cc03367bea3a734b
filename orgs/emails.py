"""The one place orgs sends email from: rendered here, delivered through the console's outbox.

Messages are rendered from templates/emails/<name>.txt and .html while the data is at hand and
queued in the caller's transaction, so a rolled-back change never emails anybody and a mail
server hiccup is retried by the outbox instead of being lost.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from console.services import email_enqueue_message


def email_send(
    *, to: list[str], subject: str, template: str, context: dict[str, Any], reply_to: list[str] | None = None
) -> None:
    context = {"site_url": settings.CONSOLE_SITE_URL.rstrip("/"), "subject": subject, **context}
    text = render_to_string(f"emails/{template}.txt", context)
    html = render_to_string(f"emails/{template}.html", context)
    # A header cannot hold a line break (an organization name could carry one).
    subject = " ".join(f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}{subject}".split())
    message = EmailMultiAlternatives(subject=subject, body=text, to=to, reply_to=reply_to)
    message.attach_alternative(html, "text/html")
    # Each call is its own email (a resent invitation is a new one), hence the random key part.
    email_enqueue_message(message=message, unique_key=f"orgs:{template}:{secrets.token_hex(12)}")
