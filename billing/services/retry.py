"""Transactions that retry on a deadlock or serialization failure (PostgreSQL) or a busy lock (SQLite)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

import structlog
from django.db import OperationalError, connection, transaction

logger = structlog.get_logger(__name__)

T = TypeVar("T")

def _is_retryable(exc: OperationalError) -> bool:
    # 40P01 deadlock_detected, 40001 serialization_failure (PostgreSQL); SQLite's busy lock.
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    return sqlstate in {"40P01", "40001"} or "database is locked" in str(exc)


def atomic_with_retry(fn: Callable[[], T], *, what: str, attempts: int = 6) -> T:
    """Run `fn` in its own transaction, retried on a deadlock or serialization failure.

    Inside a caller's transaction there is nothing to retry safely, so it runs once.
    """
    if connection.in_atomic_block:
        with transaction.atomic():
            return fn()
    for attempt in range(1, attempts + 1):
        try:
            with transaction.atomic():
                return fn()
        except OperationalError as exc:
            if attempt == attempts or not _is_retryable(exc):
                raise
            logger.warning("transaction_retry", what=what, attempt=attempt, error=str(exc).splitlines()[0])
            time.sleep(random.uniform(0.005, 0.02) * attempt)  # noqa: S311 -- jitter, not security
    raise AssertionError("unreachable")


# --- prices --------------------------------------------------------------------------------------
