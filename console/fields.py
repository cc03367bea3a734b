"""Form fields that read numbers in ASCII digits only.

Django's IntegerField and DecimalField parse with `int()` and `Decimal()`, which also take other
scripts' digits (Arabic-Indic `"\u0665\u0660"` is 50, fullwidth `"\uff15\uff10"` too), underscores
(`1_0`) and, for decimals, exponents, NaN and Infinity. A number a person types here is `[0-9]`
digits, an optional leading minus and (for decimals) one decimal point; anything else is the field's
own "Enter a number" error before Django's parsing and bounds run. Money amounts people type on
billing's forms have their own, stricter reader (`billing.money.money_amount_parse`).
"""

from __future__ import annotations

import re
from typing import Any

from django import forms

_INTEGER = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def _ascii_only(field: forms.Field, value: Any, pattern: re.Pattern[str]) -> None:
    if value in field.empty_values:
        return
    if not pattern.fullmatch(str(value).strip()):
        raise forms.ValidationError(field.error_messages["invalid"], code="invalid")


class AsciiIntegerField(forms.IntegerField):
    def to_python(self, value: Any) -> int | None:
        _ascii_only(self, value, _INTEGER)
        return super().to_python(value)


class AsciiDecimalField(forms.DecimalField):
    def to_python(self, value: Any) -> Any:
        _ascii_only(self, value, _DECIMAL)
        return super().to_python(value)
