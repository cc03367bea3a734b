from __future__ import annotations

from typing import Any

from django import forms

from .models import LedgerKind


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


class BalanceAlertForm(forms.Form):
    enabled = forms.BooleanField(label="Send balance alerts", required=False)
    threshold = forms.DecimalField(
        label="Alert threshold",
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
