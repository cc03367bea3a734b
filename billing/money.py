"""The one place where money is rounded.

Amounts are `Decimal`, never float, in the single currency `settings.CONSOLE_CURRENCY`.

- Stored amounts (ledger, balances, event costs, spend counters) keep 6 decimal places (a
  micro-unit, 1e-6): `DecimalField(max_digits=18, decimal_places=6)`.
- A usage event's cost is computed exactly and then rounded once, per event, to the micro-unit
  with ROUND_HALF_UP. Every sum (ledger charge, spend counter, rollup) adds already-rounded event
  costs, so sums agree to the micro-unit without further rounding.
- Prices are per 1,000,000 tokens, kept to 6 decimal places.
- Pages show amounts to the cent (ROUND_HALF_UP), except a non-zero amount under a cent, shown
  exactly; CSV exports carry the exact stored value.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.conf import settings

# The rounding primitives live in console/money.py so that projects (budgets) rounds the same way
# without importing billing; they are part of this module's public names.
from console.money import CENT, MICRO, quantize_cent, quantize_micro

__all__ = ["CENT", "MICRO", "ZERO", "format_money", "parse_amount", "quantize_cent", "quantize_micro", "usage_cost"]

TOKENS_PER_PRICE_UNIT = Decimal(1_000_000)
ZERO = Decimal("0.000000")


def usage_cost(*, input_tokens: int, output_tokens: int, input_price: Decimal, output_price: Decimal) -> Decimal:
    """Cost of one call: tokens x price per million, rounded half-up to the micro-unit."""
    exact = (Decimal(input_tokens) * input_price + Decimal(output_tokens) * output_price) / TOKENS_PER_PRICE_UNIT
    return quantize_micro(exact)


CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}


def format_money(value: Decimal | int | None, *, currency: str | None = None) -> str:
    """`$1,234.50`, `-$0.25`. A non-zero amount under one cent is shown exactly (`$0.001481`)
    rather than as a misleading `$0.00`."""
    if value is None:
        return "—"
    amount = Decimal(value)
    code = currency or settings.CONSOLE_CURRENCY
    symbol = CURRENCY_SYMBOLS.get(code, "")
    magnitude = abs(amount)
    if magnitude != 0 and quantize_cent(magnitude) == 0:
        number = format(quantize_micro(magnitude).normalize(), "f")
    else:
        number = f"{quantize_cent(magnitude):,.2f}"
    sign = "-" if amount < 0 and number.strip("0.,") else ""
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{number} {code}"


def parse_amount(text: str) -> Decimal:
    """A finite decimal from user text (commands, forms); ValueError otherwise."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation as exc:
        raise ValueError(f"“{text}” is not a number.") from exc
    if not value.is_finite():
        raise ValueError(f"“{text}” is not a number.")
    return value
