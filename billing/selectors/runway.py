"""The runway forecast: how long the balance lasts at the last 7 UTC days' average spend, read
from the per-project daily rollups (today so far and the 6 days before, divided by 7): days x
projects rows, whatever the number of keys, models or hours."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from django.db.models import Sum

from ..models import BillingAccount, UsageProjectDailyRollup
from ..money import format_money
from ..timeutils import today_utc

RUNWAY_DAYS = 7


@dataclass(frozen=True)
class Runway:
    daily_average: Decimal
    days: int | None  # None: no spend in the window
    text: str


def runway_forecast(*, organization_id: int, balance: Decimal | None = None, now: datetime | None = None) -> Runway:
    if balance is None:
        account = BillingAccount.objects.filter(organization_id=organization_id).only("balance").first()
        balance = account.balance if account else Decimal(0)
    first = today_utc(now) - timedelta(days=RUNWAY_DAYS - 1)
    spent = UsageProjectDailyRollup.objects.filter(organization_id=organization_id, day__gte=first).aggregate(
        total=Sum("cost")
    )["total"] or Decimal(0)
    if spent <= 0:
        return Runway(daily_average=Decimal(0), days=None, text="No spend in the last 7 days.")
    average = spent / RUNWAY_DAYS
    days = int((max(balance, Decimal(0)) / average).to_integral_value(rounding=ROUND_FLOOR))
    return Runway(
        daily_average=average,
        days=days,
        text=(
            f"At the last 7 days' average spend ({format_money(average)}/day), "
            f"your balance lasts about {days} day{'' if days == 1 else 's'}."
        ),
    )
