"""Reconciliation: does the ledger's usage charge of a day equal the sum of its events' costs?
And, before raw events are dropped: do the rollups hold exactly what the events say?"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import TruncDate

from orgs.models import Organization

from ..models import (
    LedgerEntry,
    LedgerKind,
    UsageDailyRollup,
    UsageEvent,
    UsageKeyDailyRollup,
    UsageModelDailyRollup,
    UsageProjectDailyRollup,
    UsageRollup,
)
from ..money import ZERO, ceil_micro, quantize_micro

logger = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ReconcileMismatch:
    organization_id: str  # public id
    ledger_usage: Decimal  # what the ledger charged (positive)
    event_cost: Decimal  # the exact sum of the events' costs, rounded up once (what is due)

    @property
    def difference(self) -> Decimal:
        return self.ledger_usage - self.event_cost


@dataclass
class ReconcileReport:
    day: date
    organizations: int = 0
    mismatches: list[ReconcileMismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def usage_reconcile(*, day: date) -> ReconcileReport:
    """Check, per organization, that the day's usage charges equal the exact sum of its events'
    costs rounded up once to the micro-unit — the ledger's rounding rule (billing/money.py).

    Read-only: a difference is reported (and logged as an error) for a person to investigate.
    """
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    charged = {
        row["organization_id"]: -row["total"]
        for row in LedgerEntry.objects.filter(kind=LedgerKind.USAGE, usage_date=day)
        .values("organization_id")
        .annotate(total=Sum("amount"))
        .order_by()
    }
    costs = {
        row["organization_id"]: row["total"]
        for row in UsageEvent.objects.filter(occurred_at__gte=start, occurred_at__lt=start + timedelta(days=1))
        .values("organization_id")
        .annotate(total=Sum("cost"))
        .order_by()
    }
    org_ids = sorted(set(charged) | set(costs))
    public_ids = dict(Organization.objects.filter(pk__in=org_ids).values_list("pk", "public_id"))
    report = ReconcileReport(day=day, organizations=len(org_ids))
    for org_id in org_ids:
        ledger_usage = charged.get(org_id) or ZERO
        event_cost = ceil_micro(costs.get(org_id) or ZERO)
        if ledger_usage != event_cost:
            mismatch = ReconcileMismatch(public_ids.get(org_id, str(org_id)), ledger_usage, event_cost)
            report.mismatches.append(mismatch)
            logger.error(
                "usage_reconcile_mismatch", organization=mismatch.organization_id, day=day.isoformat(),
                ledger_usage=str(ledger_usage), event_cost=str(event_cost), difference=str(mismatch.difference),
            )
    return report


# --- a range of days: what retention checks before dropping a partition ------------------------


@dataclass(frozen=True)
class Totals:
    requests: int = 0
    cost: Decimal = ZERO


@dataclass(frozen=True)
class DayMismatch:
    """One organization-day whose ledger, events and rollups do not all agree."""

    organization_id: str  # public id
    day: date
    events: Totals
    ledger_cost: Decimal
    levels: dict[str, Totals]  # each rollup level's totals, by its name

    def describe(self) -> str:
        parts = [f"events {self.events.requests} calls, {self.events.cost}"]
        if self.ledger_cost != ceil_micro(self.events.cost):
            parts.append(f"ledger charged {self.ledger_cost}")
        parts.extend(f"{name} {totals.requests} calls, {totals.cost}"
                     for name, totals in self.levels.items() if totals != self.events)
        return "; ".join(parts)


def _by_org_day(rows: QuerySet[Any], day_field: str, count: str, cost: str) -> dict[tuple[int, date], Totals]:
    grouped = rows.values("organization_id", day_field).annotate(n=count_of(count), c=Sum(cost)).order_by()
    return {
        (row["organization_id"], row[day_field]): Totals(int(row["n"] or 0), row["c"] or ZERO)
        for row in grouped
    }


def count_of(field_name: str) -> Count | Sum:
    return Count("id") if field_name == "id" else Sum(field_name)


def usage_reconcile_range(*, first: date, last: date) -> list[DayMismatch]:
    """Per organization and UTC day from `first` to `last`: events (calls, cost) against every
    rollup level, and the events' cost against the ledger's usage charges.

    Seven grouped queries whatever the range; the events' one reads only the partitions of the range.
    """
    start = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    events = _by_org_day(
        UsageEvent.objects.filter(occurred_at__gte=start, occurred_at__lt=end)
        .annotate(day=TruncDate("occurred_at", tzinfo=UTC)), "day", "id", "cost",
    )
    levels = {
        "hourly rollups": _by_org_day(
            UsageRollup.objects.filter(hour__gte=start, hour__lt=end).annotate(day=TruncDate("hour", tzinfo=UTC)),
            "day", "requests", "cost",
        ),
        **{
            name: _by_org_day(model.objects.filter(day__gte=first, day__lte=last), "day", "requests", "cost")
            for name, model in (
                ("project-model daily rollups", UsageDailyRollup),
                ("key daily rollups", UsageKeyDailyRollup),
                ("project daily rollups", UsageProjectDailyRollup),
                ("model daily rollups", UsageModelDailyRollup),
            )
        },
    }
    ledger = {
        (row["organization_id"], row["usage_date"]): quantize_micro(-(row["total"] or ZERO))
        for row in LedgerEntry.objects.filter(kind=LedgerKind.USAGE, usage_date__gte=first, usage_date__lte=last)
        .values("organization_id", "usage_date").annotate(total=Sum("amount")).order_by()
    }
    cells = sorted(set(events).union(ledger, *levels.values()))
    public_ids = dict(Organization.objects.filter(pk__in={org for org, _ in cells}).values_list("pk", "public_id"))
    mismatches = []
    for cell in cells:
        seen = events.get(cell, Totals())
        row = DayMismatch(
            organization_id=public_ids.get(cell[0], str(cell[0])), day=cell[1], events=seen,
            ledger_cost=ledger.get(cell, ZERO),
            levels={name: level.get(cell, Totals()) for name, level in levels.items()},
        )
        # Costs are exact (12 places) in events and rollups; the ledger charged each day's exact
        # cost rounded up once (billing/money.py).
        if ceil_micro(seen.cost) != row.ledger_cost or any(totals != seen for totals in row.levels.values()):
            mismatches.append(row)
    return mismatches
