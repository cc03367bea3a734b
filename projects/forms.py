"""Project forms: name and description, budgets and limits, API keys, members."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from console.errors import DomainError
from console.fields import AsciiDecimalField, AsciiIntegerField
from console.models import User

from .models import Project, ProjectRole, notify_percents_clean

MAX_TPM = 2_147_483_647  # the column's range
ROLL_OVERLAPS = {
    "1h": ("1 hour", timedelta(hours=1)),
    "6h": ("6 hours", timedelta(hours=6)),
    "24h": ("1 day", timedelta(days=1)),
    "72h": ("3 days", timedelta(days=3)),
    "168h": ("7 days", timedelta(days=7)),
}


class ProjectForm(forms.Form):
    name = forms.CharField(
        label="Project name",
        max_length=100,
        widget=forms.TextInput(attrs={"placeholder": "e.g. Production chatbot"}),
    )
    description = forms.CharField(
        label="Description",
        max_length=500,
        required=False,
        help_text="Optional. Every member of the organization can read it in the project list.",
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    @classmethod
    def initial_for(cls, project: Project) -> dict[str, Any]:
        return {"name": project.name, "description": project.description}


def _budget_field(label: str, period: str) -> AsciiDecimalField:
    return AsciiDecimalField(
        label=f"{label} ({settings.CONSOLE_CURRENCY})",
        required=False,
        min_value=Decimal("0"),
        max_digits=14,
        decimal_places=2,
        help_text=f"Requests are denied once the project's spend this {period} reaches it. Blank = no budget.",
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0", "placeholder": "No budget"}),
    )


def _percents_field(period: str) -> forms.CharField:
    return forms.CharField(
        label=f"Notify at these percentages of the {period} budget",
        required=False,
        max_length=100,
        help_text="Whole percentages from 1 to 100, separated by commas (e.g. 50, 80, 100); at most 10.",
        widget=forms.TextInput(attrs={"placeholder": "e.g. 50, 80, 100", "inputmode": "numeric"}),
    )


def parse_percents(text: str) -> list[int]:
    """ "50, 80,100%" -> [50, 80, 100]; a field error for anything that is not a whole percentage."""
    values: list[int] = []
    for part in text.replace(";", ",").split(","):
        item = part.strip().removesuffix("%").strip()
        if not item:
            continue
        if not (item.isascii() and item.isdigit()):  # str.isdigit() alone takes "²" and "١٢٣"
            raise forms.ValidationError(f"“{part.strip()}” is not a whole percentage.")
        values.append(int(item))
    try:
        return notify_percents_clean(values)
    except DomainError as error:
        raise forms.ValidationError(error.message, code=error.code) from error


class ProjectLimitsForm(forms.Form):
    monthly_budget = _budget_field("Monthly budget", "month")
    daily_budget = _budget_field("Daily budget", "day")
    tpm_limit = AsciiIntegerField(
        label="TPM limit (tokens per minute)",
        required=False,
        min_value=1,
        max_value=MAX_TPM,
        help_text="Blank = only your organization's TPM applies.",
        widget=forms.NumberInput(attrs={"min": "1", "step": "1", "placeholder": "Organization limit"}),
    )
    rpm_limit = AsciiIntegerField(
        label="RPM limit (requests per minute, optional)",
        required=False,
        min_value=1,
        max_value=MAX_TPM,
        help_text="Blank = only your organization's RPM applies.",
        widget=forms.NumberInput(attrs={"min": "1", "step": "1", "placeholder": "Organization limit"}),
    )
    monthly_notify_percents = _percents_field("monthly")
    daily_notify_percents = _percents_field("daily")
    notify_org_admins = forms.BooleanField(
        label="Also email the organization's administrators",
        label_suffix="",
        required=False,
        help_text="The project's administrators always receive these emails.",
    )

    def clean_monthly_notify_percents(self) -> list[int]:
        return parse_percents(self.cleaned_data["monthly_notify_percents"])

    def clean_daily_notify_percents(self) -> list[int]:
        return parse_percents(self.cleaned_data["daily_notify_percents"])

    @classmethod
    def initial_for(cls, project: Project) -> dict[str, Any]:
        return {
            "monthly_budget": project.monthly_budget,
            "daily_budget": project.daily_budget,
            "tpm_limit": project.tpm_limit,
            "rpm_limit": project.rpm_limit,
            "monthly_notify_percents": ", ".join(str(p) for p in project.monthly_notify_percents),
            "daily_notify_percents": ", ".join(str(p) for p in project.daily_notify_percents),
            "notify_org_admins": project.notify_org_admins,
        }


def _expiry_field() -> forms.DateField:
    return forms.DateField(
        label="Expires on (optional)",
        required=False,
        help_text="The key stops working at 00:00 UTC on this date. Leave blank to keep it until revoked.",
        widget=forms.DateInput(attrs={"type": "date"}),
    )


def _expiry_to_datetime(value: date | None) -> datetime | None:
    if value is None:
        return None
    if value <= timezone.now().date():
        raise forms.ValidationError("Choose a date after today.")
    return datetime.combine(value, time.min, tzinfo=UTC)


class APIKeyCreateForm(forms.Form):
    name = forms.CharField(
        label="Key name",
        max_length=100,
        help_text="Only for you and your teammates, e.g. “backend production”.",
        widget=forms.TextInput(attrs={"placeholder": "e.g. backend production", "autocomplete": "off"}),
    )
    expires_on = _expiry_field()

    def clean_expires_on(self) -> datetime | None:
        return _expiry_to_datetime(self.cleaned_data["expires_on"])


class APIKeyRollForm(forms.Form):
    overlap = forms.ChoiceField(
        label="Keep the old key working for",
        choices=[(value, label) for value, (label, _) in ROLL_OVERLAPS.items()],
        initial="24h",
        help_text="Time to deploy the new key; then the old key expires.",
    )
    expires_on = _expiry_field()

    def clean_overlap(self) -> timedelta:
        return ROLL_OVERLAPS[self.cleaned_data["overlap"]][1]

    def clean_expires_on(self) -> datetime | None:
        return _expiry_to_datetime(self.cleaned_data["expires_on"])


class MemberChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: User) -> str:  # type: ignore[override]
        return f"{obj.display_name} ({obj.email})"


class ProjectMemberAddForm(forms.Form):
    user = MemberChoiceField(
        label="Organization member",
        queryset=User.objects.none(),
        empty_label="Choose a member…",
        error_messages={"invalid_choice": "Choose a member of the organization who is not in this project yet."},
    )
    role = forms.TypedChoiceField(
        label="Project role", choices=ProjectRole.choices, coerce=int, initial=ProjectRole.MEMBER
    )

    def __init__(self, *args: Any, users: QuerySet[User], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = users  # type: ignore[attr-defined]


class ProjectMemberRoleForm(forms.Form):
    role = forms.TypedChoiceField(label="Project role", choices=ProjectRole.choices, coerce=int)
