"""Reads for billing pages, the gateway's enforcement and jobs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import DecimalField, Exists, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from orgs.limits import RateLimits, organization_rate_limits
from orgs.models import Organization
from projects.keys import api_key_authenticate, is_well_formed, key_digest, key_state_error
from projects.models import APIKey, Project, key_status

from .models import (
    AlertState,
    BillingAccount,
    InvoiceRequest,
    InvoiceStatus,
    LedgerEntry,
    LedgerKind,
    Price,
    ProjectSpend,
    SpendPeriod,
    UsageRollup,
)
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


@dataclass(slots=True)
class GatewayKey:
    """What authorize decides on, as plain values: the key with its project's and organization's
    fields. Building APIKey, Project and Organization instances from the row cost more than the
    query itself (bench/authorize.py)."""

    pk: int
    public_id: str
    last_used_at: datetime | None  # api_key_touch updates it
    expires_at: datetime | None
    revoked_at: datetime | None
    project_pk: int
    project_public_id: str
    project_archived_at: datetime | None
    daily_budget: Decimal | None
    monthly_budget: Decimal | None
    tpm_limit: int | None
    rpm_limit: int | None
    organization_pk: int
    organization_public_id: str
    cumulative_topups: Decimal
    rate_tier_override: str

    @classmethod
    def of(cls, key: APIKey) -> GatewayKey:
        """From a key loaded with select_related("project", "organization")."""
        project, organization = key.project, key.organization
        return cls(
            key.pk, key.public_id, key.last_used_at, key.expires_at, key.revoked_at,
            project.pk, project.public_id, project.archived_at, project.daily_budget, project.monthly_budget,
            project.tpm_limit, project.rpm_limit, organization.pk, organization.public_id,
            organization.cumulative_topups, organization.rate_tier_override,
        )

    @property
    def state_error(self) -> str | None:
        return key_state_error(revoked_at=self.revoked_at, expires_at=self.expires_at,
                               project_archived_at=self.project_archived_at)


@dataclass(frozen=True)
class GatewayContext:
    """The key (None when unknown or malformed) and its organization's and project's money state."""

    error: str | None  # None, or api_key_authenticate's errors
    key: GatewayKey | None
    state: EnforcementState


_NO_STATE = EnforcementState(balance=ZERO, day_spent=ZERO, month_spent=ZERO)


def gateway_context(*, raw_key: str, day: date) -> GatewayContext:
    """The key and its organization's balance and project's spend for `day`, never cached.

    On PostgreSQL this is one call of a PL/pgSQL function (a migration creates it): the ORM spent
    longer compiling the two queries it would take, and PostgreSQL longer planning them, than the
    database spent answering them (bench/authorize.py). Elsewhere (SQLite, the embedded default)
    the ORM's portable queries do the same.
    """
    if not is_well_formed(raw_key):
        return GatewayContext(error="malformed", key=None, state=_NO_STATE)
    if connection.vendor in FAST_PATH_VENDORS:
        return _gateway_context_sql(raw_key=raw_key, day=day)
    auth = api_key_authenticate(raw_key)
    if auth.key is None:
        return GatewayContext(error=auth.error, key=None, state=_NO_STATE)
    key = GatewayKey.of(auth.key)
    if auth.error is not None:
        return GatewayContext(error=auth.error, key=key, state=_NO_STATE)
    state = enforcement_state(organization_id=key.organization_pk, project_id=key.project_pk, day=day)
    return GatewayContext(error=None, key=key, state=state)


FAST_PATH_VENDORS = {"postgresql"}

# billing/migrations/0002_gateway_context_function.py: one statement, its plan kept per connection.
_GATEWAY_SQL = "SELECT * FROM billing_gateway_context(%s, %s, %s)"


def _gateway_context_sql(*, raw_key: str, day: date) -> GatewayContext:
    params: list[str | date] = [key_digest(raw_key), day, day.replace(day=1)]
    with connection.cursor() as cursor:
        cursor.execute(_GATEWAY_SQL, params)
        row = cursor.fetchone()
    if row is None:
        return GatewayContext(error="unknown", key=None, state=_NO_STATE)
    # The function's columns: GatewayKey's fields in order, then balance, day and month spend.
    key = GatewayKey(*row[:16])
    balance, day_spent, month_spent = row[16:]
    state = EnforcementState(balance=balance or ZERO, day_spent=day_spent or ZERO, month_spent=month_spent or ZERO)
    return GatewayContext(error=key.state_error, key=key, state=state)


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
    """The organization's ledger, last posted first; dates are UTC days, both ends included."""
    entries = LedgerEntry.objects.filter(organization=organization)
    if kind:
        entries = entries.filter(kind=kind)
    if date_from:
        entries = entries.filter(created_at__gte=datetime.combine(date_from, time.min, tzinfo=UTC))
    if date_to:
        entries = entries.filter(created_at__lt=datetime.combine(date_to + timedelta(days=1), time.min, tzinfo=UTC))
    return entries.order_by("-id")


def prices_in_force(*, at: datetime | None = None) -> list[Price]:
    """The price of each model at `at` (default now): the newest row that has taken effect."""
    at = at or timezone.now()
    latest: dict[str, Price] = {}
    for price in Price.objects.filter(effective_from__lte=at).order_by("model", "-effective_from"):
        latest.setdefault(price.model, price)
    return list(latest.values())


def balance_banner(*, organization_id: int) -> str:
    """What the console's banner says to org admins: "exhausted" at or below zero, "low" while
    the balance alert is fired, else "". One query."""
    row = (
        BillingAccount.objects.filter(organization_id=organization_id)
        .values_list("balance", "organization__balance_alert__state", "organization__balance_alert__enabled")
        .first()
    )
    if row is None:  # never funded: the Billing page explains how to top up
        return ""
    balance, state, enabled = row
    if balance <= 0:
        return "exhausted"
    if state == AlertState.FIRED and enabled:
        return "low"
    return ""


def invoice_requests_for(*, organization: Organization) -> QuerySet[InvoiceRequest]:
    """The organization's invoice requests, newest first, with their invoice (if issued)."""
    return (
        InvoiceRequest.objects.filter(organization=organization)
        .select_related("invoice", "ledger_entry")
        .defer("invoice__pdf")
        .order_by("-requested_at", "-id")
    )


def _live_invoice_request() -> Exists:
    return Exists(
        InvoiceRequest.objects.filter(ledger_entry=OuterRef("pk")).exclude(status=InvoiceStatus.REJECTED)
    )


def invoiceable_topups(*, organization: Organization) -> QuerySet[LedgerEntry]:
    """Top-ups with no live (requested or issued) invoice request."""
    return (
        LedgerEntry.objects.filter(organization=organization, kind=LedgerKind.TOPUP)
        .exclude(_live_invoice_request())
        .order_by("-id")
    )


def with_invoice_state(entries: QuerySet[LedgerEntry]) -> QuerySet[LedgerEntry]:
    """Ledger rows with `invoice_requested`: a top-up already has a live invoice request."""
    return entries.annotate(invoice_requested=_live_invoice_request())


def invoiceable_months(*, organization: Organization, today: date | None = None) -> list[date]:
    """Ended calendar months with usage charges and no live invoice request, newest first."""
    this_month = (today or today_utc()).replace(day=1)
    months = {
        d.replace(day=1)
        for d in LedgerEntry.objects.filter(
            organization=organization, kind=LedgerKind.USAGE, usage_date__lt=this_month
        ).dates("usage_date", "month")
    }
    taken = set(
        InvoiceRequest.objects.filter(organization=organization, month__isnull=False)
        .exclude(status=InvoiceStatus.REJECTED)
        .values_list("month", flat=True)
    )
    return sorted(months - taken, reverse=True)


# --- consumption analytics (rollups only: never raw events) -------------------------------------

USAGE_RANGES = (7, 30, 90)
DEFAULT_USAGE_DAYS = 30
_PERCENT = Decimal("0.1")


@dataclass(frozen=True, kw_only=True)
class Usage:
    cost: Decimal = ZERO
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, kw_only=True)
class UsageDay(Usage):
    day: date
    height: Decimal = ZERO  # the bar's height: percent of the range's peak day cost


@dataclass(frozen=True, kw_only=True)
class UsageGroup(Usage):
    """One row of a breakdown (a project, a model or an API key) over the range."""

    label: str
    ref: str = ""  # the project's or key's public id, the model's name; "" when masked
    detail: str = ""  # a key's hint
    share: Decimal = ZERO  # percent of the range's cost
    masked: bool = False  # another member's key: name and hint withheld
    mine: bool = False
    inactive: str = ""  # "Revoked", "Expired", "Archived", or ""


@dataclass(frozen=True, kw_only=True)
class UsageReport:
    """A range of UTC days, every day present (zero-filled), with its totals and breakdowns."""

    days: int
    first_day: date
    last_day: date
    daily: list[UsageDay]
    total: Usage
    peak: UsageDay | None  # the day of highest cost; None when nothing cost anything
    by_project: list[UsageGroup] = field(default_factory=list)
    by_model: list[UsageGroup] = field(default_factory=list)
    by_key: list[UsageGroup] = field(default_factory=list)

    @property
    def has_usage(self) -> bool:
        return self.total.requests > 0 or self.total.cost > 0


def usage_range(*, days: int, today: date | None = None) -> tuple[date, date]:
    """The first and last UTC day of the last `days` days, today included."""
    last = today or today_utc()
    return last - timedelta(days=days - 1), last


def _rollups(*, organization: Organization, project: Project | None, first: date, last: date) -> QuerySet[UsageRollup]:
    start = datetime.combine(first, time.min, tzinfo=UTC)
    end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC)
    # Served by usagerollup_project_hour or usagerollup_org_hour.
    rows = (
        UsageRollup.objects.filter(project=project)
        if project is not None
        else UsageRollup.objects.filter(organization=organization)
    )
    return rows.filter(hour__gte=start, hour__lt=end)


_SUMS = {
    "cost_sum": Sum("cost"),
    "requests_sum": Sum("requests"),
    "input_sum": Sum("input_tokens"),
    "output_sum": Sum("output_tokens"),
}


def _usage_fields(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "cost": row["cost_sum"] or ZERO,
        "requests": row["requests_sum"] or 0,
        "input_tokens": row["input_sum"] or 0,
        "output_tokens": row["output_sum"] or 0,
    }


def _percent(part: Decimal, whole: Decimal) -> Decimal:
    if whole <= 0:
        return ZERO
    return (part * 100 / whole).quantize(_PERCENT)


def _daily(rollups: QuerySet[UsageRollup], first: date, last: date) -> list[UsageDay]:
    sums = {
        row["day"]: row
        for row in rollups.annotate(day=TruncDate("hour", tzinfo=UTC)).values("day").annotate(**_SUMS).order_by()
    }
    every_day = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    peak_cost = max((row["cost_sum"] or ZERO for row in sums.values()), default=ZERO)
    daily = []
    for day in every_day:
        row = sums.get(day)
        if row is None:
            daily.append(UsageDay(day=day))
            continue
        fields = _usage_fields(row)
        daily.append(UsageDay(day=day, height=_percent(fields["cost"], peak_cost), **fields))
    return daily


def _total(daily: list[UsageDay]) -> Usage:
    return Usage(
        cost=sum((d.cost for d in daily), ZERO),
        requests=sum(d.requests for d in daily),
        input_tokens=sum(d.input_tokens for d in daily),
        output_tokens=sum(d.output_tokens for d in daily),
    )


def _by_model(rollups: QuerySet[UsageRollup], total: Decimal) -> list[UsageGroup]:
    rows = rollups.values("model").annotate(**_SUMS).order_by("-cost_sum", "model")
    return [
        UsageGroup(label=row["model"], ref=row["model"], share=_percent(row["cost_sum"] or ZERO, total),
                   **_usage_fields(row))
        for row in rows
    ]


def _report(*, organization: Organization, project: Project | None, days: int, today: date | None) -> UsageReport:
    first, last = usage_range(days=days, today=today)
    daily = _daily(_rollups(organization=organization, project=project, first=first, last=last), first, last)
    total = _total(daily)
    peak = max(daily, key=lambda d: d.cost) if total.cost > 0 else None
    return UsageReport(days=days, first_day=first, last_day=last, daily=daily, total=total, peak=peak)


def organization_usage(*, organization: Organization, days: int = DEFAULT_USAGE_DAYS,
                       today: date | None = None) -> UsageReport:
    """The organization's consumption per UTC day over the last `days` days, by project and by model."""
    report = _report(organization=organization, project=None, days=days, today=today)
    rollups = _rollups(organization=organization, project=None, first=report.first_day, last=report.last_day)
    projects = (
        rollups.values("project__public_id", "project__name", "project__archived_at")
        .annotate(**_SUMS)
        .order_by("-cost_sum", "project__name")
    )
    report.by_project.extend(
        UsageGroup(
            label=row["project__name"], ref=row["project__public_id"],
            share=_percent(row["cost_sum"] or ZERO, report.total.cost),
            inactive="Archived" if row["project__archived_at"] else "",
            **_usage_fields(row),
        )
        for row in projects
    )
    report.by_model.extend(_by_model(rollups, report.total.cost))
    return report


_INACTIVE = {"active": "", "revoked": "Revoked", "expired": "Expired"}


def project_usage(*, project: Project, viewer_id: int, see_all_keys: bool, days: int = DEFAULT_USAGE_DAYS,
                  today: date | None = None) -> UsageReport:
    """The project's consumption per UTC day over the last `days` days, by model and by API key.

    Keys of other members are masked unless `see_all_keys` (project and org admins): the roles
    table's "own keys; other keys masked". Revoked and expired keys still count.
    """
    organization = project.organization
    report = _report(organization=organization, project=project, days=days, today=today)
    rollups = _rollups(organization=organization, project=project, first=report.first_day, last=report.last_day)
    report.by_model.extend(_by_model(rollups, report.total.cost))
    keys = (
        rollups.values(
            "api_key__public_id", "api_key__name", "api_key__hint", "api_key__created_by_id",
            "api_key__revoked_at", "api_key__expires_at",
        )
        .annotate(**_SUMS)
        .order_by("-cost_sum", "api_key__name", "api_key__public_id")
    )
    for row in keys:
        mine = row["api_key__created_by_id"] == viewer_id
        visible = see_all_keys or mine
        report.by_key.append(UsageGroup(
            label=row["api_key__name"] if visible else "Another member's key",
            ref=row["api_key__public_id"] if visible else "",
            detail=row["api_key__hint"] if visible else "",
            masked=not visible,
            mine=mine,
            inactive=_INACTIVE[key_status(revoked_at=row["api_key__revoked_at"],
                                          expires_at=row["api_key__expires_at"])],
            share=_percent(row["cost_sum"] or ZERO, report.total.cost),
            **_usage_fields(row),
        ))
    return report
