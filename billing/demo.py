"""The billing side of the demo organization: prices, a top-up and some usage of the demo key.

Idempotent like the rest of `manage.py demo`: prices and the top-up are keyed (model + start,
the top-up's reference) and demo usage is sent once. The "Demo project" and its key belong to
the projects side of the demo (console/demo.py, through the services); its key is passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from orgs.models import Organization
from projects.models import APIKey

from .api import usage_report
from .models import LedgerKind, Price, UsageEvent
from .money import usage_cost
from .services.ledger import ledger_post
from .services.prices import price_set
from .services.rollups import usage_aggregate

DEMO_TOPUP_REFERENCE = "demo-topup-1"
DEMO_PRICES = {  # per 1M tokens: input, output
    "acme-small": (Decimal("0.15"), Decimal("0.60")),
    "acme-large": (Decimal("2.50"), Decimal("10.00")),
    "acme-embed": (Decimal("0.02"), Decimal("0")),
}
DEMO_PRICES_FROM = datetime(2025, 1, 1, tzinfo=UTC)


def billing_demo_load(*, organization: Organization, key: APIKey) -> None:
    """Prices, the demo top-up and a few days of usage of `key` (the demo project's key, made by
    the projects side of the demo through its services)."""
    for model, (input_price, output_price) in DEMO_PRICES.items():
        if not Price.objects.filter(model=model, effective_from=DEMO_PRICES_FROM).exists():
            price_set(model=model, input_per_mtok=input_price, output_per_mtok=output_price,
                      effective_from=DEMO_PRICES_FROM, actor=None)
    ledger_post(organization=organization, kind=LedgerKind.TOPUP, amount=Decimal("25.00"),
                reference=DEMO_TOPUP_REFERENCE, memo="Demo credit", actor=None)
    if not UsageEvent.objects.filter(project_id=key.project_id).exists():  # (project_id, occurred_at) index
        _send_demo_usage(key)


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
        usage_report(events)
    usage_aggregate()


@dataclass(frozen=True)
class DemoUsage:
    organization: Organization
    events: int
    cost: Decimal
    balance: Decimal
    threshold: Decimal


DEMO_USAGE_MODEL = "acme-large"
DEMO_USAGE_TOKENS = (100_000, 20_000)  # input, output: $0.45 per call at the demo prices


def billing_demo_usage(*, organization: Organization, below_threshold_by: Decimal = Decimal("0.50")) -> DemoUsage:
    """Send enough demo usage through the real ingest service to take the balance just below the
    balance alert's threshold (or one more call when it is already below). After commit, the
    worker checks the alert: one email per crossing, printed by the console email backend."""
    from .selectors.alerts import balance_alert_for  # the demo is loaded before alerts matter
    from .selectors.pages import billing_summary, prices_in_force

    key = (
        APIKey.objects.active()
        .filter(organization=organization, project__archived_at=None)
        .order_by("-created_at")
        .first()
    )
    if key is None:
        raise ValueError(f"{organization.name} has no usable API key: run `manage.py demo` first.")
    threshold = balance_alert_for(organization=organization).threshold
    balance = billing_summary(organization=organization).balance
    price = next((p for p in prices_in_force() if p.model == DEMO_USAGE_MODEL), None)
    if price is None:
        raise ValueError(f"No price for {DEMO_USAGE_MODEL}: run `manage.py demo` first.")
    per_call = usage_cost(input_tokens=DEMO_USAGE_TOKENS[0], output_tokens=DEMO_USAGE_TOKENS[1],
                          input_price=price.input_per_mtok, output_price=price.output_per_mtok)
    wanted = balance - threshold + below_threshold_by
    calls = max(1, math.ceil(wanted / per_call)) if wanted > 0 else 1
    now = timezone.now()
    stamp = now.strftime("%Y%m%d%H%M%S%f")
    sent = 0
    for start in range(0, calls, 20):  # several batches, like a gateway reporting as it goes
        events = [
            {"id": f"demo-usage-{stamp}-{i}", "key_id": key.public_id, "model": DEMO_USAGE_MODEL,
             "input_tokens": DEMO_USAGE_TOKENS[0], "output_tokens": DEMO_USAGE_TOKENS[1],
             "occurred_at": now.isoformat()}
            for i in range(start, min(start + 20, calls))
        ]
        sent += usage_report(events, now=now).accepted
    return DemoUsage(organization=organization, events=sent, cost=per_call * sent,
                     balance=billing_summary(organization=organization).balance, threshold=threshold)
