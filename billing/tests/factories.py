from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import factory
from django.db.models import F, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from billing.models import (
    LedgerEntry,
    LedgerKind,
    Price,
    UsageDailyRollup,
    UsageEvent,
    UsageKeyDailyRollup,
    UsageModelDailyRollup,
    UsageProjectDailyRollup,
    UsageRollup,
)
from billing.money import ZERO, ceil_micro
from billing.services.ledger import ledger_post
from console.tests.factories import UserFactory
from orgs.models import Organization
from orgs.tests.factories import OrganizationFactory
from projects.keys import generate_raw_key, key_digest, key_hint
from projects.models import APIKey, Project


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Project {n}")


class PriceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Price

    model = factory.Sequence(lambda n: f"model-{n}")
    input_per_mtok = Decimal("1.000000")
    output_per_mtok = Decimal("2.000000")
    effective_from = factory.LazyFunction(lambda: datetime(2020, 1, 1, tzinfo=UTC))


def make_api_key(*, project: Project | None = None, **overrides: Any) -> tuple[str, APIKey]:
    """A key the way the console issues them: only the digest and a hint are stored."""
    project = project or ProjectFactory()
    raw = generate_raw_key()
    fields: dict[str, Any] = {
        "organization": project.organization,
        "project": project,
        "created_by": UserFactory(),
        "name": "test key",
        "digest": key_digest(raw),
        "hint": key_hint(raw),
        **overrides,
    }
    return raw, APIKey.objects.create(**fields)


def fund(organization: Organization, amount: str | Decimal, *, reference: str | None = None) -> None:
    ledger_post(
        organization=organization,
        kind=LedgerKind.TOPUP,
        amount=Decimal(amount),
        reference=reference or f"test-topup-{organization.pk}-{amount}-{timezone.now().timestamp()}",
        actor=None,
    )


def usage_event(
    event_id: str,
    key: APIKey | str,
    model: str,
    *,
    input_tokens: int = 1000,
    output_tokens: int = 500,
    occurred_at: datetime | str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One event of the usage API's body."""
    when = occurred_at or timezone.now()
    return {
        "id": event_id,
        "key_id": key if isinstance(key, str) else key.public_id,
        "model": model,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "occurred_at": when if isinstance(when, str) else when.isoformat(),
        **extra,
    }


def usage_due(organization: Organization | int) -> Decimal:
    """What the ledger must have charged for an organization's stored events: each UTC day's
    exact cost, rounded up once (billing/money.py)."""
    days = (
        UsageEvent.objects.filter(organization=organization)
        .annotate(day=TruncDate("occurred_at")).values("day").annotate(cost=Sum("cost")).order_by()
    )
    return sum((ceil_micro(row["cost"]) for row in days), ZERO)


def usage_charged(organization: Organization | int) -> Decimal:
    """What the ledger's usage rows took from an organization (positive)."""
    total = LedgerEntry.objects.filter(organization=organization, kind=LedgerKind.USAGE).aggregate(s=Sum("amount"))
    return -(total["s"] or ZERO)


def rollup(key: APIKey, when: datetime, *, model: str = "acme-small", cost: str = "1.00", requests: int = 1,
           input_tokens: int = 100, output_tokens: int = 50) -> UsageRollup:
    """An hourly rollup row and its share of the daily levels, as usage_aggregate would fold them."""
    sums = {"requests": requests, "input_tokens": input_tokens, "output_tokens": output_tokens, "cost": Decimal(cost)}
    day = when.astimezone(UTC).date()
    project, organization = {"project_id": key.project_id}, {"organization_id": key.organization_id}
    for model_class, lookup, defaults in (
        (UsageDailyRollup, {**project, "model": model, "day": day}, organization),
        (UsageKeyDailyRollup, {"api_key": key, "day": day}, {**organization, **project}),
        (UsageProjectDailyRollup, {**project, "day": day}, organization),
        (UsageModelDailyRollup, {**organization, "model": model, "day": day}, {}),
    ):
        row, _created = model_class.objects.get_or_create(**lookup, defaults=defaults)
        model_class.objects.filter(pk=row.pk).update(**{name: F(name) + value for name, value in sums.items()})
    return UsageRollup.objects.create(
        organization_id=key.organization_id, project_id=key.project_id, api_key=key, model=model, hour=when, **sums
    )
