"""Organization forms: create, information, verification, invitations, roles, filters, Contact Sales."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django_countries import countries
from django_countries.fields import LazyTypedChoiceField  # type: ignore[attr-defined]

from console.fields import AsciiIntegerField

from .documents import document_problem
from .models import InvitationStatus, Role, SalesNeed


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
    actor = AsciiIntegerField(required=False)


class InvitationForm(forms.Form):
    email = forms.EmailField(
        label="Email address",
        max_length=254,
        help_text="The link works only for this address.",
        widget=forms.EmailInput(attrs={"placeholder": "name@company.com", "autocomplete": "off"}),
    )
    role = forms.TypedChoiceField(label="Organization role", choices=Role.choices, coerce=int, initial=Role.MEMBER)
    valid_days = AsciiIntegerField(
        label="Link valid for (days)",
        min_value=1,
        max_value=30,
        help_text="1 to 30 days.",
    )

    projects = forms.MultipleChoiceField(
        label="Projects",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"invalid_choice": "Choose among this organization's active projects."},
    )

    def __init__(
        self,
        *args: Any,
        projects: list[tuple[str, str]] | None = None,
        project_roles: list[tuple[int, str]] | None = None,
        **kwargs: Any,
    ) -> None:
        """`projects` [(public id, name)] and `project_roles` [(value, label)] come from orgs.hooks."""
        super().__init__(*args, **kwargs)
        self.fields["valid_days"].initial = settings.CONSOLE_INVITATION_DAYS
        projects = projects or []
        project_roles = project_roles or []
        self.fields["projects"].choices = projects  # type: ignore[attr-defined]
        self.project_ids = [project_id for project_id, _ in projects]
        for project_id, name in projects:
            self.fields[f"project_role_{project_id}"] = forms.TypedChoiceField(
                label=f"Project role in {name}",
                choices=project_roles,
                coerce=int,
                initial=project_roles[0][0] if project_roles else None,
                required=False,
            )
        if not projects:
            del self.fields["projects"]

    @property
    def project_rows(self) -> list[tuple[Any, Any]]:
        """(checkbox, role select) for each project, for the template to lay out side by side."""
        if "projects" not in self.fields:
            return []
        checkboxes = {str(checkbox.data["value"]): checkbox for checkbox in self["projects"]}
        return [(checkboxes[project_id], self[f"project_role_{project_id}"]) for project_id in self.project_ids]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        grants = []
        for project_id in cleaned.get("projects") or []:
            field = f"project_role_{project_id}"
            role = cleaned.get(field)
            if role in (None, ""):
                role = self.fields[field].initial
            grants.append({"project_id": project_id, "role": role})
        cleaned["project_grants"] = grants
        return cleaned


class InvitationFilterForm(forms.Form):
    status = forms.ChoiceField(choices=[("", "All"), *InvitationStatus.choices], required=False)


class RoleChangeForm(forms.Form):
    role = forms.TypedChoiceField(label="Role", choices=Role.choices, coerce=int)


class VerificationRequestForm(forms.Form):
    legal_name = forms.CharField(label="Legal name", max_length=200)
    registration_number = forms.CharField(
        label="Registration number", max_length=50, help_text="Company or tax registration number."
    )
    country = LazyTypedChoiceField(label="Country", choices=[("", "—"), *countries])
    address = forms.CharField(label="Registered address", max_length=500, widget=forms.Textarea(attrs={"rows": 3}))
    contact_name = forms.CharField(label="Contact person", max_length=150)
    contact_email = forms.EmailField(label="Contact email", max_length=254)
    contact_phone = forms.CharField(label="Contact phone", max_length=40, required=False)
    document = forms.FileField(
        label="Supporting document",
        help_text="Certificate of incorporation or a registry extract: PDF, PNG or JPEG, at most 10 MB.",
        widget=forms.ClearableFileInput(attrs={"accept": ".pdf,.png,.jpg,.jpeg,application/pdf,image/png,image/jpeg"}),
    )

    def clean_document(self) -> UploadedFile:
        document: UploadedFile = self.cleaned_data["document"]
        problem = document_problem(document)
        if problem:
            raise forms.ValidationError(problem)
        return document

    @classmethod
    def initial_for(cls, organization: Any, user: Any, previous: Any = None) -> dict[str, Any]:
        """A resubmission starts from the rejected request; a first one from the organization's information."""
        if previous is not None:
            fields = [name for name in cls.base_fields if name != "document"]
            initial = {name: getattr(previous, name) for name in fields}
            initial["country"] = previous.country.code
            return initial
        return {
            "legal_name": organization.name,
            "registration_number": organization.tax_number,
            "country": organization.country.code if organization.country else "",
            "address": organization.legal_address,
            "contact_name": user.name,
            "contact_email": user.email,
        }


class VerificationRejectForm(forms.Form):
    reason = forms.CharField(
        label="Reason (sent to the organization)", max_length=1000, widget=forms.Textarea(attrs={"rows": 4})
    )


class ContactSalesForm(forms.Form):
    name = forms.CharField(label="Your name", max_length=150)
    email = forms.EmailField(label="Email", max_length=254)
    company = forms.CharField(label="Company", max_length=200)
    need = forms.ChoiceField(label="What do you need?", choices=SalesNeed.choices)
    message = forms.CharField(
        label="Message",
        max_length=5000,
        widget=forms.Textarea(
            attrs={"rows": 5, "placeholder": "How many projects or keys, expected traffic, timeline…"}
        ),
    )
