"""Beat jobs: thin, idempotent, each also a manage.py command calling the same service."""

from __future__ import annotations

from datetime import date

from celery import shared_task

from .services import usage_aggregate, usage_reconcile
from .timeutils import yesterday_utc


@shared_task(name="billing.usage_aggregate")
def usage_aggregate_task() -> None:
    usage_aggregate()


@shared_task(name="billing.usage_reconcile")
def usage_reconcile_task(day: str | None = None) -> None:
    usage_reconcile(day=date.fromisoformat(day) if day else yesterday_utc())
