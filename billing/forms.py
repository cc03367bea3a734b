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
