"""Reconciliation: does the ledger's usage charge of a day equal the sum of its events' costs?"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import structlog
from django.db.models import Sum

from orgs.models import Organization

from ..models import LedgerEntry, LedgerKind, UsageEvent
from ..money import ZERO, quantize_micro

logger = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ReconcileMismatch:
    organization_id: str  # public id
    ledger_usage: Decimal  # what the ledger charged (positive)
    event_cost: Decimal  # the sum of the events' costs

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
    """Check, per organization, that the day's usage charges equal the sum of its events' costs.

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
        ledger_usage = quantize_micro(charged.get(org_id) or ZERO)
        event_cost = quantize_micro(costs.get(org_id) or ZERO)
        if ledger_usage != event_cost:
            mismatch = ReconcileMismatch(public_ids.get(org_id, str(org_id)), ledger_usage, event_cost)
            report.mismatches.append(mismatch)
            logger.error(
                "usage_reconcile_mismatch", organization=mismatch.organization_id, day=day.isoformat(),
                ledger_usage=str(ledger_usage), event_cost=str(event_cost), difference=str(mismatch.difference),
            )
    return report


# --- the gateway's authorization -------------------------------------------------------------------
