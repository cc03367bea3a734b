"""The billing side of the demo organization: prices, a top-up, a project with a known key, some usage.

Idempotent like the rest of `manage.py demo`: prices and the top-up are keyed (model + start,
the top-up's reference), the project and key are found by name and digest, and demo usage is
only sent once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from console.models import User
from orgs.models import Organization
from projects.keys import _checksum, key_digest, key_hint  # the checksum rule lives there, once
from projects.models import APIKey, Project, ProjectMembership, ProjectRole

from .models import LedgerKind, Price, UsageEvent
from .services import ledger_post, price_set, usage_aggregate, usage_ingest

# A fixed, published key so the README's curl works on `make run`: like the demo password, it
# only ever exists in a local demo database. Built like a real key so its checksum is valid.
_DEMO_KEY_BODY = "demo-key-for-local-runs-only-never-deployed"
DEMO_PROJECT_NAME = "Demo project"
DEMO_TOPUP_REFERENCE = "demo-topup-1"
DEMO_PRICES = {  # per 1M tokens: input, output
    "acme-small": (Decimal("0.15"), Decimal("0.60")),
    "acme-large": (Decimal("2.50"), Decimal("10.00")),
    "acme-embed": (Decimal("0.02"), Decimal("0")),
}
DEMO_PRICES_FROM = datetime(2025, 1, 1, tzinfo=UTC)


def demo_api_key() -> str:
    prefix = settings.CONSOLE_API_KEY_PREFIX
    return f"{prefix}{_DEMO_KEY_BODY}{_checksum(prefix, _DEMO_KEY_BODY)}"


@dataclass(frozen=True)
class BillingDemo:
    project: Project
    key: APIKey
    raw_key: str


def billing_demo_load(*, organization: Organization, user: User) -> BillingDemo:
    for model, (input_price, output_price) in DEMO_PRICES.items():
        if not Price.objects.filter(model=model, effective_from=DEMO_PRICES_FROM).exists():
            price_set(model=model, input_per_mtok=input_price, output_per_mtok=output_price,
                      effective_from=DEMO_PRICES_FROM, actor=None)
    ledger_post(organization=organization, kind=LedgerKind.TOPUP, amount=Decimal("25.00"),
                reference=DEMO_TOPUP_REFERENCE, memo="Demo credit", actor=None)
    project = Project.objects.filter(organization=organization, name=DEMO_PROJECT_NAME).first()
    if project is None:
        project = Project.objects.create(
            organization=organization, name=DEMO_PROJECT_NAME, created_by=user,
            description="Created by `manage.py demo`: its key is in the README's curl examples.",
            daily_budget=Decimal("5.00"), monthly_budget=Decimal("50.00"),
        )
    ProjectMembership.objects.get_or_create(project=project, user=user, defaults={"role": ProjectRole.ADMIN})
    raw = demo_api_key()
    key = APIKey.objects.filter(digest=key_digest(raw)).first()
    if key is None:
        key = APIKey.objects.create(organization=organization, project=project, created_by=user,
                                    name="Demo key", digest=key_digest(raw), hint=key_hint(raw))
    if not UsageEvent.objects.filter(event_id__startswith="demo-").exists():
        _send_demo_usage(key)
    return BillingDemo(project=project, key=key, raw_key=raw)


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
