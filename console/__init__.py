"""The project package: settings, root URLs, the Celery app, accounts, the email outbox, shared helpers."""

from __future__ import annotations

from .celery import app as celery_app

__all__ = ["celery_app"]
