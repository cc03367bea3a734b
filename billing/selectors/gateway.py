"""Reads for the gateway's enforcement: one key's context (key, project, organization, balance and
spend) in one round trip."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.db import connection
from django.db.models import DecimalField, Subquery

from projects.keys import api_key_authenticate, is_well_formed, key_digest, key_state_error
from projects.models import APIKey

from ..models import BillingAccount, ProjectSpend, SpendPeriod
from ..money import ZERO


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
            organization.cumulative_topups,
            organization.rate_tier_override,
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

