"""The one place orgs sends email from (a later change routes all email through an outbox).

Messages are rendered from templates/emails/<name>.txt and .html while the data is at hand, and
sent only after the transaction commits, so a rolled-back change never emails anybody.
"""

from __future__ import annotations

from typing import Any

import structlog
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string

logger = structlog.get_logger(__name__)


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

    def send() -> None:
        try:
            message.send()
        except Exception:
            # The change is committed; a mail server hiccup must not turn it into an error page.
            logger.exception("email_send_failed", template=template)

    transaction.on_commit(send)
