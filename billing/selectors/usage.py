"""Consumption analytics for the overview and usage pages: read from rollups only, never raw events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet, Sum

from orgs.models import Organization
from projects.models import KeyStatus, Project, key_status
from projects.permissions import may_see_key

from ..models import UsageDailyRollup, UsageKeyDailyRollup, UsageModelDailyRollup, UsageProjectDailyRollup
from ..money import ZERO
from ..timeutils import today_utc

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


def _in_range(rows: QuerySet[Any], first: date, last: date) -> QuerySet[Any]:
    return rows.filter(day__gte=first, day__lte=last)


def _project_days(*, organization: Organization, project: Project | None) -> QuerySet[UsageProjectDailyRollup]:
    """The per-project daily level: days x projects rows, whatever the number of keys, models,
    hours or events (served by usageprojectdaily_org_day or usageprojectdaily_unique_project_day)."""
    if project is not None:
        return UsageProjectDailyRollup.objects.filter(project=project)
    return UsageProjectDailyRollup.objects.filter(organization=organization)


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


def _daily(rollups: QuerySet[UsageProjectDailyRollup], first: date, last: date) -> list[UsageDay]:
    sums = {row["day"]: row for row in rollups.values("day").annotate(**_SUMS).order_by()}
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


def _by_model(rollups: QuerySet[Any], total: Decimal) -> list[UsageGroup]:
    rows = rollups.values("model").annotate(**_SUMS).order_by("-cost_sum", "model")
    return [
        UsageGroup(label=row["model"], ref=row["model"], share=_percent(row["cost_sum"] or ZERO, total),
                   **_usage_fields(row))
        for row in rows
    ]


def _report(*, organization: Organization, project: Project | None, days: int, today: date | None) -> UsageReport:
    first, last = usage_range(days=days, today=today)
    daily = _daily(_in_range(_project_days(organization=organization, project=project), first, last), first, last)
    total = _total(daily)
    peak = max(daily, key=lambda d: d.cost) if total.cost > 0 else None
    return UsageReport(days=days, first_day=first, last_day=last, daily=daily, total=total, peak=peak)


def organization_usage(*, organization: Organization, days: int = DEFAULT_USAGE_DAYS,
                       today: date | None = None) -> UsageReport:
    """The organization's consumption per UTC day over the last `days` days, by project and by model."""
    report = _report(organization=organization, project=None, days=days, today=today)
    first, last = report.first_day, report.last_day
    projects = (
        _in_range(_project_days(organization=organization, project=None), first, last)
        .values("project__public_id", "project__name", "project__archived_at")
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
    models = _in_range(UsageModelDailyRollup.objects.filter(organization=organization), first, last)
    report.by_model.extend(_by_model(models, report.total.cost))
    return report


def _inactive_label(status: KeyStatus) -> str:
    return "" if status == KeyStatus.ACTIVE else status.label


def project_usage(*, project: Project, viewer_id: int, viewer_role: int, days: int = DEFAULT_USAGE_DAYS,
                  today: date | None = None) -> UsageReport:
    """The project's consumption per UTC day over the last `days` days, by model and by API key.

    Keys the viewer (effective project role `viewer_role`) may not see are masked
    (`projects.permissions.may_see_key`: "own keys; other keys masked"). Revoked and expired keys still count.
    """
    organization = project.organization
    report = _report(organization=organization, project=project, days=days, today=today)
    models = _in_range(UsageDailyRollup.objects.filter(project=project), report.first_day, report.last_day)
    report.by_model.extend(_by_model(models, report.total.cost))
    keys = (
        _in_range(UsageKeyDailyRollup.objects.filter(project=project), report.first_day, report.last_day)
        .values(
            "api_key__public_id", "api_key__name", "api_key__hint", "api_key__created_by_id",
            "api_key__revoked_at", "api_key__expires_at",
        )
        .annotate(**_SUMS)
        .order_by("-cost_sum", "api_key__name", "api_key__public_id")
    )
    for row in keys:
        mine = row["api_key__created_by_id"] == viewer_id
        visible = may_see_key(role=viewer_role, owner_id=row["api_key__created_by_id"], user_id=viewer_id)
        report.by_key.append(UsageGroup(
            label=row["api_key__name"] if visible else "Another member's key",
            ref=row["api_key__public_id"] if visible else "",
            detail=row["api_key__hint"] if visible else "",
            masked=not visible,
            mine=mine,
            inactive=_inactive_label(key_status(revoked_at=row["api_key__revoked_at"],
                                                expires_at=row["api_key__expires_at"])),
            share=_percent(row["cost_sum"] or ZERO, report.total.cost),
            **_usage_fields(row),
        ))
    return report
