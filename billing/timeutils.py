"""UTC calendar helpers: budgets, spend counters, rollup days and the ledger's usage days follow UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from django.utils import timezone


def today_utc(now: datetime | None = None) -> date:
    """Budgets, spend counters and usage days follow the UTC calendar."""
    return (now or timezone.now()).astimezone(UTC).date()


def yesterday_utc() -> date:
    return today_utc() - timedelta(days=1)
