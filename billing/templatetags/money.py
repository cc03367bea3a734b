"""Template filters that show money as people read it (cents, $), from billing/money.py's rules."""

from __future__ import annotations

from decimal import Decimal

from django import template

from billing.money import format_money

register = template.Library()


@register.filter(name="money")
def money(value: Decimal | int | None) -> str:
    """`{{ amount|money }}` → `$1,234.50` (the rounding rules are in billing/money.py)."""
    return format_money(value)
