"""Rollups: usage events folded into hourly rows per key and model, which every page reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC

import structlog
from django.db import connection
from django.db.models import Count, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from ..models import UsageBatch, UsageEvent, UsageRollup
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
    """Fold the events of batches not yet folded into hourly rollups (per key, model, hour).

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


def _aggregate_step(limit: int) -> AggregateResult:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_AGGREGATE_LOCK_ID])
            if not cursor.fetchone()[0]:
                return AggregateResult(skipped=True)
    batch_ids = list(
        UsageBatch.objects.filter(folded_at__isnull=True).order_by("id").values_list("id", flat=True)[:limit]
    )
    if not batch_ids:
        return AggregateResult()
    groups = list(
        UsageEvent.objects.filter(batch_id__in=batch_ids)
        .annotate(hour=TruncHour("occurred_at", tzinfo=UTC))
        .values("organization_id", "project_id", "api_key_id", "model", "hour")
        .annotate(
            n=Count("id"), input=Sum("input_tokens"), output=Sum("output_tokens"), total=Sum("cost")
        )
        .order_by()
    )
    existing = {
        (r.api_key_id, r.model, r.hour): r
        for r in UsageRollup.objects.filter(
            api_key_id__in={g["api_key_id"] for g in groups}, hour__in={g["hour"] for g in groups}
        )
    }
    to_create: list[UsageRollup] = []
    to_update: list[UsageRollup] = []
    events = 0
    for g in groups:
        events += g["n"]
        rollup = existing.get((g["api_key_id"], g["model"], g["hour"]))
        if rollup is None:
            rollup = UsageRollup(
                organization_id=g["organization_id"], project_id=g["project_id"], api_key_id=g["api_key_id"],
                model=g["model"], hour=g["hour"],
            )
            to_create.append(rollup)
        else:
            to_update.append(rollup)
        rollup.requests += g["n"]
        rollup.input_tokens += g["input"]
        rollup.output_tokens += g["output"]
        rollup.cost += g["total"]
    UsageRollup.objects.bulk_create(to_create)
    UsageRollup.objects.bulk_update(to_update, ["requests", "input_tokens", "output_tokens", "cost"])
    UsageBatch.objects.filter(id__in=batch_ids).update(folded_at=timezone.now())
    return AggregateResult(batches=len(batch_ids), events=events, rollups=len(groups))
