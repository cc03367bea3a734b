from __future__ import annotations

import structlog
from celery import shared_task

logger = structlog.get_logger(__name__)


@shared_task(name="console.heartbeat")
def heartbeat() -> None:
    """Beat's proof of life: the worker logs one line a minute, so a stalled beat is visible."""
    logger.info("beat_heartbeat")
