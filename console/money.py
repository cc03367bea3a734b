"""The money-rounding primitives every app may use (`console` depends on no app).

`billing/money.py` is where the console's money rules are written down (event costs, sums,
display); it re-exports these. They live here because `projects` rounds budgets to the cent
and may not import `billing` (dependencies point billing → projects → orgs).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

MICRO = Decimal("0.000001")
CENT = Decimal("0.01")


def quantize_micro(value: Decimal) -> Decimal:
    """To the micro-unit (1e-6), half-up: stored amounts (ledger, balances, event costs)."""
    return value.quantize(MICRO, rounding=ROUND_HALF_UP)


def quantize_cent(value: Decimal) -> Decimal:
    """To the cent, half-up: budgets, invoice lines, what pages show."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def cents(value: Decimal | None) -> Decimal | None:
    """`quantize_cent` that lets "no amount" (None) through: optional budgets."""
    return None if value is None else quantize_cent(value)
