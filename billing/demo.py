"""The billing side of the demo organization: prices, a top-up and some usage of the demo key.

Idempotent like the rest of `manage.py demo`: prices and the top-up are keyed (model + start,
the top-up's reference) and demo usage is sent once. The "Demo project" and its key belong to
the projects side of the demo; they are reused here and made only when missing (the key is then
returned once, like every new key).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import Q
from django.utils import timezone

from console.models import User
from orgs.models import Organization
from projects.keys import generate_raw_key, key_digest, key_hint
from projects.models import APIKey, Project

from .models import LedgerKind, Price, UsageEvent
from .services import ledger_post, price_set, usage_aggregate, usage_ingest

DEMO_PROJECT_NAME = "Demo project"
DEMO_KEY_NAME = "Demo key"
DEMO_TOPUP_REFERENCE = "demo-topup-1"
DEMO_PRICES = {  # per 1M tokens: input, output
    "acme-small": (Decimal("0.15"), Decimal("0.60")),
    "acme-large": (Decimal("2.50"), Decimal("10.00")),
    "acme-embed": (Decimal("0.02"), Decimal("0")),
}
DEMO_PRICES_FROM = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class BillingDemo:
    project: Project
    key: APIKey
    raw_key: str | None  # only when this run made the key: a key's secret is shown once


def billing_demo_load(*, organization: Organization, user: User) -> BillingDemo:
    for model, (input_price, output_price) in DEMO_PRICES.items():
        if not Price.objects.filter(model=model, effective_from=DEMO_PRICES_FROM).exists():
            price_set(model=model, input_per_mtok=input_price, output_per_mtok=output_price,
                      effective_from=DEMO_PRICES_FROM, actor=None)
    ledger_post(organization=organization, kind=LedgerKind.TOPUP, amount=Decimal("25.00"),
                reference=DEMO_TOPUP_REFERENCE, memo="Demo credit", actor=None)
    project = Project.objects.filter(organization=organization, name=DEMO_PROJECT_NAME, archived_at=None).first()
    if project is None:
        project = Project.objects.create(organization=organization, name=DEMO_PROJECT_NAME, created_by=user,
                                         daily_budget=Decimal("10.00"), monthly_budget=Decimal("100.00"))
    now = timezone.now()
    key = (
        APIKey.objects.filter(project=project, revoked_at=None)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .order_by("-created_at")
        .first()
    )
    raw_key = None
    if key is None:
        raw_key = generate_raw_key()
        key = APIKey.objects.create(organization=organization, project=project, created_by=user,
                                    name=DEMO_KEY_NAME, digest=key_digest(raw_key), hint=key_hint(raw_key))
    if not UsageEvent.objects.filter(event_id__startswith="demo-").exists():
        _send_demo_usage(key)
    return BillingDemo(project=project, key=key, raw_key=raw_key)


def _send_demo_usage(key: APIKey) -> None:
    """Three days of light traffic, one batch a day, so the ledger and rollups are not empty."""
    now = timezone.now()
    for day in (2, 1, 0):
        events = []
        for n in range(12):
            model = ("acme-small", "acme-large", "acme-embed")[n % 3]
            events.append({
                "id": f"demo-{day}-{n}", "key_id": key.public_id, "model": model,
                "input_tokens": 1200 + 150 * n, "output_tokens": 0 if model == "acme-embed" else 300 + 40 * n,
                "occurred_at": (now - timedelta(days=day, minutes=5 * n + 1)).isoformat(),
            })
        usage_ingest(events=events)
    usage_aggregate()
