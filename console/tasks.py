"""Celery tasks of the outbox: send one email, re-enqueue stuck ones."""

from __future__ import annotations

from typing import Any

import structlog
from celery import shared_task

from console.services import email_deliver, email_outbox_retry

logger = structlog.get_logger(__name__)


@shared_task(name="console.heartbeat")
def heartbeat() -> None:
    """Beat's proof of life: the worker logs one line a minute, so a stalled beat is visible."""
    logger.info("beat_heartbeat")


# max_retries=None: the outbox row counts attempts (CONSOLE_EMAIL_MAX_ATTEMPTS), not Celery.
@shared_task(bind=True, name="console.email_send", max_retries=None, acks_late=True)
def email_send(self: Any, email_id: int) -> None:
    """Send one outbox email; safe to run twice or concurrently (the row lock decides)."""
    delivery = email_deliver(email_id=email_id)
    if delivery.retry_in is not None:
        raise self.retry(countdown=delivery.retry_in)


@shared_task(name="console.email_outbox_retry")
def email_outbox_retry_stuck() -> None:
    """Beat: re-enqueue pending emails whose task was lost. Failed ones wait for a human
    (`manage.py email_outbox_retry`): they were refused for good or failed for hours."""
    email_outbox_retry(include_failed=False)
