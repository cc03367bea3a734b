from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, cast

from django import forms
from django.conf import settings

from console.errors import DomainError
from console.fields import AsciiDecimalField

from .models import InvoiceKind, LedgerEntry, LedgerKind
from .money import format_money, money_amount_parse
from .selectors.usage import DEFAULT_USAGE_DAYS, USAGE_RANGES


class MoneyAmountField(forms.Field):
    """A money amount a person types, read by `billing.money.money_amount_parse` (ASCII digits, an
    optional `$`, commas between groups of three, at most 2 decimals) within `minimum`..`maximum`
    (None: no upper bound). Forms whose bounds are settings set them in `__init__`. Cleans to a Decimal."""

    widget = forms.TextInput

    def __init__(self, *, minimum: Decimal = Decimal(0), maximum: Decimal | None = None, **kwargs: Any) -> None:
        self.minimum, self.maximum = minimum, maximum
        super().__init__(**kwargs)

    def widget_attrs(self, widget: forms.Widget) -> dict[str, Any]:
        return {**super().widget_attrs(widget), "inputmode": "decimal", "maxlength": "32"}

    def to_python(self, value: Any) -> Decimal | None:
        text = "" if value is None else str(value).strip()
        if not text:
            return None
        try:
            return money_amount_parse(text, minimum=self.minimum, maximum=self.maximum)
        except DomainError as exc:
            raise forms.ValidationError(exc.message, code=exc.code) from None


class LedgerFilterForm(forms.Form):
    kind = forms.ChoiceField(label="Type", choices=[("", "All types"), *LedgerKind.choices], required=False)
    date_from = forms.DateField(label="From (UTC)", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To (UTC)", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise forms.ValidationError("The “From” date must be on or before the “To” date.")
        return data

    def filters(self) -> dict[str, Any]:
        """The filters to apply: with a bad date, only the type filter (the error is shown)."""
        if self.is_valid():
            return dict(self.cleaned_data)
        return {"kind": self.cleaned_data.get("kind", "")}


class UsageRangeForm(forms.Form):
    days = forms.TypedChoiceField(
        choices=[(n, f"{n} days") for n in USAGE_RANGES], coerce=int, required=False, empty_value=None
    )

    def days_or_default(self) -> int:
        """The range asked for; anything else (missing, `?days=abc`, `?days=365`) is the default."""
        if self.is_valid() and self.cleaned_data["days"]:
            return int(self.cleaned_data["days"])
        return DEFAULT_USAGE_DAYS


class BalanceAlertForm(forms.Form):
    enabled = forms.BooleanField(label="Send balance alerts", required=False)
    threshold = AsciiDecimalField(
        label=f"Alert threshold ({settings.CONSOLE_CURRENCY})",
        min_value=0,
        max_digits=8,
        decimal_places=2,
        help_text="An email goes out when the balance drops below this amount.",
        widget=forms.NumberInput(attrs={"step": "0.01", "inputmode": "decimal"}),
    )
    extra_recipients = forms.CharField(
        label="Additional recipients",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "finance@example.com"}),
        help_text="Up to 5 addresses, one per line or separated by commas. "
        "Alerts always go to the organization's registered email too.",
    )

    def clean_extra_recipients(self) -> list[str]:
        text = self.cleaned_data.get("extra_recipients") or ""
        return [a.strip() for a in text.replace(",", "\n").splitlines() if a.strip()]


class InvoiceRequestForm(forms.Form):
    kind = forms.ChoiceField(
        label="Invoice for", choices=InvoiceKind.choices, widget=forms.RadioSelect, initial=InvoiceKind.TOPUP
    )
    ledger_entry = forms.ModelChoiceField(
        label="Top-up", queryset=LedgerEntry.objects.none(), required=False, empty_label="Choose a top-up"
    )
    month = forms.TypedChoiceField(label="Month of usage", required=False, coerce=date.fromisoformat, empty_value=None)
    billing_name = forms.CharField(label="Billed to", max_length=200)
    billing_address = forms.CharField(
        label="Address", max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    billing_country = forms.CharField(label="Country", max_length=100, required=False)
    billing_tax_number = forms.CharField(label="Tax / registration number", max_length=50, required=False)
    billing_email = forms.EmailField(label="Billing email", max_length=254)

    def __init__(self, *args: Any, topups: Any, months: list[date], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        ledger_field = cast(forms.ModelChoiceField, self.fields["ledger_entry"])  # type: ignore[type-arg]
        ledger_field.queryset = topups
        ledger_field.label_from_instance = lambda e: (  # type: ignore[method-assign,assignment]
            f"{e.created_at:%b} {e.created_at.day}, {e.created_at.year} — {format_money(e.amount)} ({e.reference})"
        )
        month_field = cast(forms.ChoiceField, self.fields["month"])
        month_field.choices = [("", "Choose a month"), *((m.isoformat(), f"{m:%B %Y}") for m in months)]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("kind") == InvoiceKind.TOPUP and not data.get("ledger_entry"):
            self.add_error("ledger_entry", "Choose the top-up to invoice.")
        if data.get("kind") == InvoiceKind.USAGE and not data.get("month"):
            self.add_error("month", "Choose the month to invoice.")
        return data


class AddFundsForm(forms.Form):
    """A preset amount or a custom one (the custom amount wins when both are given)."""

    preset = forms.ChoiceField(label="Amount", required=False, widget=forms.RadioSelect)
    custom = MoneyAmountField(label="Other amount", required=False,
                              widget=forms.TextInput(attrs={"placeholder": "e.g. 40"}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [(f"{p:.2f}", format_money(p)) for p in settings.CONSOLE_TOPUP_PRESETS]
        cast(forms.ChoiceField, self.fields["preset"]).choices = choices
        custom = cast(MoneyAmountField, self.fields["custom"])
        custom.minimum, custom.maximum = settings.CONSOLE_TOPUP_MIN, settings.CONSOLE_TOPUP_MAX
        custom.help_text = f"From {format_money(custom.minimum)} to {format_money(custom.maximum)}."

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "custom" in self.errors:  # a bad custom amount is never replaced by the preset
            return data
        amount = data.get("custom")
        if amount is None and data.get("preset"):
            amount = Decimal(data["preset"])  # one of the choices, from the settings
        if amount is None:
            raise forms.ValidationError("Pick an amount or enter one.")
        data["amount"] = amount
        return data


class AutoRechargeForm(forms.Form):
    enabled = forms.BooleanField(label="Recharge automatically", required=False)
    threshold = MoneyAmountField(label="When the balance drops below")
    amount = MoneyAmountField(label="Add this amount")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        high = settings.CONSOLE_TOPUP_MAX
        cast(MoneyAmountField, self.fields["threshold"]).maximum = high
        amount = cast(MoneyAmountField, self.fields["amount"])
        amount.minimum, amount.maximum = settings.CONSOLE_TOPUP_MIN, high
