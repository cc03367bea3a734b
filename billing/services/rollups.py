"""Rollups: usage events folded into the rows pages read. Hourly per key and model (the finest
level, kept forever); daily per project (the charts' days, the project breakdown, the runway), per
organization and model (the model breakdown), per project and model (the project's model
breakdown, invoices) and per key (the project's key breakdown)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC

import structlog
from django.db import connection
from django.db.models import Count, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from ..models import (
    UsageBatch,
    UsageDailyRollup,
    UsageEvent,
    UsageKeyDailyRollup,
    UsageModelDailyRollup,
    UsageProjectDailyRollup,
    UsageRollup,
)
from .retry import atomic_with_retry

logger = structlog.get_logger(__name__)

_AGGREGATE_LOCK_ID = 0x5553_4147  # "USAG": the advisory lock that keeps usage_aggregate single


@dataclass
class AggregateResult:
    batches: int = 0
    events: int = 0
    rollups: int = 0
    skipped: bool = False  # another run held the lock


def usage_aggregate(*, batches_per_step: int = 200, max_steps: int = 50) -> AggregateResult:
    """Fold the events of batches not yet folded into every rollup level (module docstring).

    Each step folds some batches and marks them folded in the same transaction, so a crash leaves
    them to the next run and nothing is counted twice. The watermark is that per-batch mark rather
    than a highest-id-seen: ids are handed out before commit, so a batch that commits late would
    slip under a moving id mark and never be folded. On PostgreSQL an advisory lock keeps one run
    at a time (a concurrent run returns at once); SQLite serializes writers on its own.
    """
    total = AggregateResult()
    for _ in range(max_steps):
        step = atomic_with_retry(lambda: _aggregate_step(batches_per_step), what="usage_aggregate")
        if step.skipped:
            total.skipped = total.batches == 0
            break
        total.batches += step.batches
        total.events += step.events
        total.rollups += step.rollups
        if step.batches < batches_per_step:
            break
    if total.batches:
        logger.info("usage_aggregated", batches=total.batches, events=total.events, rollups=total.rollups)
    return total


_SUMS = "requests = {t}.requests + excluded.requests, input_tokens = {t}.input_tokens + excluded.input_tokens, " \
    "output_tokens = {t}.output_tokens + excluded.output_tokens, cost = {t}.cost + excluded.cost"


# The daily levels: each model, the columns it groups by (besides the day) and its unique constraint.
_DAILY_LEVELS = (
    (UsageDailyRollup, "organization_id, project_id, model", "project_id, model, day"),
    (UsageKeyDailyRollup, "organization_id, project_id, api_key_id", "api_key_id, day"),
    (UsageProjectDailyRollup, "organization_id, project_id", "project_id, day"),
    (UsageModelDailyRollup, "organization_id, model", "organization_id, day, model"),
)


def _upserts(day: str) -> list[str]:
    """Every level, each an `INSERT … SELECT … FROM g … ON CONFLICT … DO UPDATE` adding to the row,
    where `g` is the batches' events grouped per key, model and hour. `WHERE true` keeps SQLite's
    parser from reading ON CONFLICT as a join's ON."""
    hourly = UsageRollup._meta.db_table
    # Fixed identifiers and expressions only; values travel as parameters of the grouped SELECT.
    upserts = [
        f"INSERT INTO {hourly} (organization_id, project_id, api_key_id, model, hour, requests, input_tokens, "  # noqa: S608 -- fixed identifiers  # nosec B608
        "output_tokens, cost) SELECT organization_id, project_id, api_key_id, model, hour, n, i, o, c FROM g "
        f"WHERE true ON CONFLICT (api_key_id, model, hour) DO UPDATE SET {_SUMS.format(t=hourly)}",
    ]
    for model, columns, unique in _DAILY_LEVELS:
        table = model._meta.db_table
        upserts.append(
            f"INSERT INTO {table} ({columns}, day, requests, input_tokens, output_tokens, cost) "  # noqa: S608 -- fixed identifiers  # nosec B608
            f"SELECT {columns}, {day}, sum(n), sum(i), sum(o), sum(c) FROM g WHERE true GROUP BY {columns}, {day} "
            f"ON CONFLICT ({unique}) DO UPDATE SET {_SUMS.format(t=table)}"
        )
    return upserts


def _aggregate_step(limit: int) -> AggregateResult:
    postgres = connection.vendor == "postgresql"
    if postgres:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_AGGREGATE_LOCK_ID])
            if not cursor.fetchone()[0]:
                return AggregateResult(skipped=True)
    unfolded = UsageBatch.objects.filter(folded_at__isnull=True).order_by("id")
    batches = list(unfolded.values_list("id", "first_occurred_at")[:limit])
    if not batches:
        return AggregateResult()
    batch_ids = [pk for pk, _first in batches]
    events = UsageEvent.objects.filter(batch_id__in=batch_ids)
    if all(first is not None for _pk, first in batches):
        # The bound lets PostgreSQL read only the partitions the batches' events are in, instead
        # of probing every month's batch index.
        events = events.filter(occurred_at__gte=min(first for _pk, first in batches if first is not None))
    grouped = (
        events
        .annotate(hour=TruncHour("occurred_at", tzinfo=UTC))
        .values("organization_id", "project_id", "api_key_id", "model", "hour")
        .annotate(n=Count("id"), i=Sum("input_tokens"), o=Sum("output_tokens"), c=Sum("cost"))
        .order_by()
    )
    select, params = grouped.query.sql_with_params()
    with connection.cursor() as cursor:
        if postgres:
            # One statement: the events are grouped once (a MATERIALIZED CTE) and every level is
            # upserted from that; data-modifying CTEs always run to completion.
            upserts = ", ".join(f"u{n} AS ({sql})" for n, sql in enumerate(_upserts("CAST(hour AS date)")))
            cursor.execute(
                f"WITH g AS MATERIALIZED ({select}), {upserts} SELECT coalesce(sum(n), 0), count(*) FROM g",  # noqa: S608  # nosec B608
                params,
            )
        else:  # SQLite: no data-modifying CTEs, so one statement per level over the same grouping
            for sql in _upserts("date(hour)"):
                cursor.execute(f"WITH g AS ({select}) {sql}", params)
            cursor.execute(f"SELECT coalesce(sum(n), 0), count(*) FROM ({select}) AS g", params)  # noqa: S608  # nosec B608
        events, groups = cursor.fetchone()
    UsageBatch.objects.filter(id__in=batch_ids).update(folded_at=timezone.now())
    return AggregateResult(batches=len(batch_ids), events=int(events), rollups=int(groups))
