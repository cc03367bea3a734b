from __future__ import annotations

from typing import Any

from django import forms
from django_countries import countries
from django_countries.fields import LazyTypedChoiceField  # type: ignore[attr-defined]


def _clean_name(value: str) -> str:
    value = (value or "").strip()
    if not value:
        raise forms.ValidationError("Enter a name for the organization.")
    return value


class OrganizationCreateForm(forms.Form):
    name = forms.CharField(
        label="Organization name",
        max_length=100,
        help_text="Shown to your members and on invoices; you can change it later.",
        widget=forms.TextInput(attrs={"autofocus": True, "placeholder": "Acme Inc."}),
    )
    registered_email = forms.EmailField(
        label="Registered email",
        max_length=254,
        help_text="Balance alerts and billing notices go to this address.",
    )

    def clean_name(self) -> str:
        return _clean_name(self.cleaned_data["name"])


class OrganizationInformationForm(forms.Form):
    name = forms.CharField(label="Organization name", max_length=100)
    registered_email = forms.EmailField(
        label="Registered email",
        max_length=254,
        help_text="Balance alerts and billing notices go to this address.",
    )
    legal_address = forms.CharField(
        label="Legal address", max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    country = LazyTypedChoiceField(label="Country", choices=[("", "—"), *countries], required=False)
    tax_number = forms.CharField(label="Tax / registration number", max_length=50, required=False)
    website = forms.URLField(
        label="Website", max_length=200, required=False, assume_scheme="https",
        widget=forms.URLInput(attrs={"placeholder": "https://example.com"}),
    )

    def clean_name(self) -> str:
        return _clean_name(self.cleaned_data["name"])

    def clean_tax_number(self) -> str:
        value: str = self.cleaned_data["tax_number"].strip()
        if value and not all(ch.isalnum() or ch in " -./" for ch in value):
            raise forms.ValidationError("Use letters, digits, spaces, dashes, dots or slashes only.")
        return value

    @classmethod
    def initial_for(cls, organization: Any) -> dict[str, Any]:
        return {field: getattr(organization, field) for field in cls.base_fields}


class AuditFilterForm(forms.Form):
    action = forms.CharField(required=False)
    actor = forms.IntegerField(required=False)
