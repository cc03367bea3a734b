"""The one place where money is rounded.

Amounts are `Decimal`, never float, in the single currency `settings.CONSOLE_CURRENCY`.

- The ledger, balances and prices keep 6 decimal places (a micro-unit, 1e-6):
  `DecimalField(max_digits=18, decimal_places=6)`.
- A usage event's cost is exact: tokens x a 6-place price per million is exact at 12 places, and
  events, spend counters and rollups keep all 12 (`max_digits=28, decimal_places=12`), so their
  sums are exact too. Nothing about a single event is rounded.
- The ledger rounds once per row: a usage row charges the growth of the organization's exact
  usage cost of that day, rounded up to the micro-unit — `ceil(day cost after) - ceil(day cost
  before)` (`usage_charge`). That is the row's exact cost minus what earlier rows of the day paid
  ahead, rounded up, with the new remainder carried forward. So the rows of a day always add up to
  the day's exact cost rounded up once: no call is free (1000 calls of 24 tokens at $0.02/M charge
  $0.00048, not $0), and no organization is charged more than 1e-6 above its exact cost, whatever
  the batching. Reconciliation checks exactly that equality.
- Prices are per 1,000,000 tokens, kept to 6 decimal places.
- Pages show amounts to the cent (ROUND_HALF_UP), except a non-zero amount under a cent, shown
  exactly; CSV exports carry the exact stored value.
- An amount a person types (Add funds, auto-recharge, a staff refund) is read by one strict parser,
  `money_amount_parse`: ASCII digits, an optional leading `$`, thousands commas only between groups
  of three, at most 2 decimals, within the bounds; nothing is rounded or guessed.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal, InvalidOperation

from django.conf import settings

from console.errors import DomainError

# The rounding primitives live in console/money.py so that projects (budgets) rounds the same way
# without importing billing; they are part of this module's public names.
from console.money import CENT, MICRO, quantize_cent, quantize_micro

__all__ = [
    "CENT", "COST_UNIT", "MICRO", "ZERO", "ceil_micro", "format_money", "money_amount_check", "money_amount_parse",
    "parse_amount", "quantize_cent", "quantize_micro", "usage_charge", "usage_cost",
]

TOKENS_PER_PRICE_UNIT = Decimal(1_000_000)
ZERO = Decimal("0.000000")
COST_UNIT = Decimal("1e-12")  # the places of an exact usage cost


def usage_cost(*, input_tokens: int, output_tokens: int, input_price: Decimal, output_price: Decimal) -> Decimal:
    """Exact cost of one call: tokens x price per million (12 places; no rounding happens here)."""
    exact = (Decimal(input_tokens) * input_price + Decimal(output_tokens) * output_price) / TOKENS_PER_PRICE_UNIT
    return exact.quantize(COST_UNIT)  # exact: a 6-place price / 1e6 has 12 places


def ceil_micro(value: Decimal) -> Decimal:
    return value.quantize(MICRO, rounding=ROUND_CEILING)


def usage_charge(*, day_cost_before: Decimal, day_cost_added: Decimal) -> Decimal:
    """What one ledger row charges for `day_cost_added` (the exact cost of its events) when the
    organization's exact usage cost of that day was `day_cost_before`: the rows of a day add up to
    the day's exact cost rounded up once (see the module's docstring)."""
    return ceil_micro(day_cost_before + day_cost_added) - ceil_micro(day_cost_before)


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


# Not `Decimal(text)`, which also takes other scripts' digits (Arabic-Indic, fullwidth: `"\u0665\u0660"`
# is 50 to it), underscores (`1_0`), exponents, signs, NaN and Infinity; and commas only between groups
# of three (`1,000`, never `1,0,0`). [0-9], not \d: Python's \d matches every script's digits.
_MONEY_TEXT = re.compile(r"\$?(?P<whole>[0-9]+|[1-9][0-9]{0,2}(?:,[0-9]{3})+)(?:\.(?P<fraction>[0-9]+))?")
_MONEY_TEXT_MAX_LENGTH = 32
MONEY_AMOUNT_EXAMPLE = "Enter an amount such as 25 or 1,250.50, in digits 0-9."


def money_amount_check(
    amount: Decimal, *, minimum: Decimal, maximum: Decimal | None, field: str | None = "amount"
) -> Decimal:
    """A typed amount as the rules want it: finite, at most 2 decimal places, from `minimum` to
    `maximum` (None: no upper bound). DomainError (code `invalid_amount` or `amount_out_of_range`)
    otherwise; the amount itself is returned unchanged."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise DomainError(MONEY_AMOUNT_EXAMPLE, code="invalid_amount", field=field)
    if amount != amount.quantize(CENT):
        raise DomainError("Enter an amount with at most 2 decimal places.", code="invalid_amount", field=field)
    if amount < minimum or (maximum is not None and amount > maximum):
        bounds = (f"from {format_money(minimum)} to {format_money(maximum)}" if maximum is not None
                  else f"of at least {format_money(minimum)}")
        raise DomainError(f"Enter an amount {bounds}.", code="amount_out_of_range", field=field)
    return amount


def money_amount_parse(
    text: str, *, minimum: Decimal, maximum: Decimal | None, field: str | None = "amount"
) -> Decimal:
    """The one reader of a money amount a person typed: `25`, `25.5`, `$1,250.50`. Surrounding
    spaces are ignored; anything else that is not ASCII digits, one leading `$`, thousands commas
    between groups of three and at most 2 decimals is refused (DomainError, code `invalid_amount`),
    as is an amount outside the bounds (`amount_out_of_range`)."""
    text = text.strip(" \t\r\n")
    match = _MONEY_TEXT.fullmatch(text) if len(text) <= _MONEY_TEXT_MAX_LENGTH else None
    if match is None:
        raise DomainError(MONEY_AMOUNT_EXAMPLE, code="invalid_amount", field=field)
    if len(match["fraction"] or "") > 2:
        raise DomainError("Enter an amount with at most 2 decimal places.", code="invalid_amount", field=field)
    whole = match["whole"].replace(",", "")
    amount = Decimal(f"{whole}.{match['fraction']}" if match["fraction"] else whole)
    return money_amount_check(amount, minimum=minimum, maximum=maximum, field=field)
