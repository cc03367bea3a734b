"""Model prices per million tokens, kept by staff; usage is costed at the price in force when it occurred."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from console.errors import DomainError
from console.models import User
from orgs.audit import audit_record
from orgs.permissions import require_staff

from ..models import Price
from ..money import MICRO


@transaction.atomic
def price_set(
    *,
    model: str,
    input_per_mtok: Decimal,
    output_per_mtok: Decimal,
    actor: User | None,
    effective_from: datetime | None = None,
) -> Price:
    """Record a model's price per million tokens from `effective_from` (default: now).

    Earlier prices stay: usage is always costed at the price in force when it occurred. Staff only
    (or the platform itself, `actor=None`).
    """
    require_staff(actor, "billing.add_price")
    model = model.strip()
    errors: dict[str, str] = {}
    if not model or len(model) > 100:
        errors["model"] = "Enter a model name of 1 to 100 characters."
    for name, value in (("input_per_mtok", input_per_mtok), ("output_per_mtok", output_per_mtok)):
        if value < 0 or value != value.quantize(MICRO) or value >= Decimal(10**6):
            errors[name] = "Enter a price of at least 0 with at most 6 decimal places."
    effective_from = effective_from or timezone.now()
    if not errors and Price.objects.filter(model=model, effective_from=effective_from).exists():
        errors["effective_from"] = f"{model} already has a price from {effective_from:%Y-%m-%d %H:%M:%S}."
    if errors:
        raise DomainError(code="invalid_price", field_errors=errors)
    price = Price.objects.create(
        model=model,
        input_per_mtok=input_per_mtok,
        output_per_mtok=output_per_mtok,
        effective_from=effective_from,
        created_by=actor,
    )
    audit_record(
        actor=actor,
        organization=None,
        action="price.set",
        target=price,
        after={
            "model": model,
            "input_per_mtok": str(input_per_mtok),
            "output_per_mtok": str(output_per_mtok),
            "effective_from": effective_from.isoformat(),
        },
    )
    return price




def price_at(prices: Sequence[Price], at: datetime) -> Price | None:
    """`prices` newest first: the latest that took effect at or before `at`."""
    for price in prices:
        if price.effective_from <= at:
            return price
    return None
