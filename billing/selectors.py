"""Reads for billing pages, the gateway's enforcement and jobs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import DecimalField, QuerySet, Subquery, Sum
from django.utils import timezone

from orgs.limits import RateLimits, organization_rate_limits
from orgs.models import Organization

from .models import BillingAccount, LedgerEntry, LedgerKind, Price, ProjectSpend, SpendPeriod
from .money import ZERO
from .timeutils import today_utc


@dataclass(frozen=True)
class EnforcementState:
    balance: Decimal
    day_spent: Decimal
    month_spent: Decimal


def _spent(project_id: int, period: str, start: date) -> Subquery:
    return Subquery(
        ProjectSpend.objects.filter(project_id=project_id, period=period, period_start=start).values("spent")[:1],
        output_field=DecimalField(max_digits=18, decimal_places=6),
    )


def enforcement_state(*, organization_id: int, project_id: int, day: date) -> EnforcementState:
    """The organization's balance and the project's spend today and this month: one query."""
    row = (
        BillingAccount.objects.filter(organization_id=organization_id)
        .annotate(
            day_spent=_spent(project_id, SpendPeriod.DAY, day),
            month_spent=_spent(project_id, SpendPeriod.MONTH, day.replace(day=1)),
        )
        .values_list("balance", "day_spent", "month_spent")
        .first()
    )
    if row is None:  # never topped up: no account row yet
        return EnforcementState(balance=ZERO, day_spent=ZERO, month_spent=ZERO)
    balance, day_spent, month_spent = row
    return EnforcementState(balance=balance, day_spent=day_spent or ZERO, month_spent=month_spent or ZERO)


@dataclass(frozen=True)
class BillingSummary:
    balance: Decimal
    cumulative_topups: Decimal
    rate_limits: RateLimits
    month_usage: Decimal  # usage charged this UTC month (positive)


def billing_summary(*, organization: Organization) -> BillingSummary:
    account = BillingAccount.objects.filter(organization=organization).only("balance").first()
    today = today_utc()
    charged = LedgerEntry.objects.filter(
        organization=organization, kind=LedgerKind.USAGE, usage_date__gte=today.replace(day=1)
    ).aggregate(total=Sum("amount"))["total"]
    return BillingSummary(
        balance=account.balance if account else ZERO,
        cumulative_topups=organization.cumulative_topups,
        rate_limits=organization_rate_limits(organization),
        month_usage=-(charged or ZERO),
    )


def ledger_entries(
    *,
    organization: Organization,
    kind: str = "",
    date_from: date | None = None,
    date_to: date | None = None,
) -> QuerySet[LedgerEntry]:
    """The organization's ledger, newest first; dates are UTC days, both ends included."""
    entries = LedgerEntry.objects.filter(organization=organization)
    if kind:
        entries = entries.filter(kind=kind)
    if date_from:
        entries = entries.filter(created_at__gte=datetime.combine(date_from, time.min, tzinfo=UTC))
    if date_to:
        entries = entries.filter(created_at__lt=datetime.combine(date_to + timedelta(days=1), time.min, tzinfo=UTC))
    return entries.order_by("-created_at", "-id")


def prices_in_force(*, at: datetime | None = None) -> list[Price]:
    """The price of each model at `at` (default now): the newest row that has taken effect."""
    at = at or timezone.now()
    latest: dict[str, Price] = {}
    for price in Price.objects.filter(effective_from__lte=at).order_by("model", "-effective_from"):
        latest.setdefault(price.model, price)
    return list(latest.values())
