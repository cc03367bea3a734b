"""Staff tools: organizations (limit overrides), verification review, invitations, Contact Sales."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from console.errors import DomainError

from .forms import VerificationRejectForm
from .models import ContactSalesRequest, Invitation, Membership, Organization, VerificationRequest
from .services import (
    ORGANIZATION_INFO_FIELDS,
    ORGANIZATION_LIMIT_FIELDS,
    contact_sales_request_update,
    organization_limits_update,
    organization_update,
    verification_approve,
    verification_reject,
)


class MembershipInline(admin.TabularInline[Membership, Organization]):
    model = Membership
    fields = ("user", "role", "created_at", "last_used_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Organization | None = None) -> bool:
        return False


class OrganizationAdminForm(forms.ModelForm[Organization]):
    rate_tier_override = forms.ChoiceField(
        required=False,
        help_text="Pins the organization's rate tier; blank = follows cumulative top-ups.",
    )
    # Declared, as on the information page: a generated URLField warns that Django 6 changes its
    # default scheme (the form is built when this module is imported).
    website = forms.URLField(max_length=200, required=False, assume_scheme="https")

    class Meta:
        model = Organization
        fields = [*ORGANIZATION_INFO_FIELDS, *ORGANIZATION_LIMIT_FIELDS]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = [str(row["name"]) for row in settings.CONSOLE_RATE_TIERS]
        field = cast(forms.ChoiceField, self.fields["rate_tier_override"])
        field.choices = [("", "— follows top-ups —"), *((n, n) for n in names)]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin[Organization]):
    form = OrganizationAdminForm
    list_display = (
        "name", "public_id", "verification_tier", "verification_status",
        "projects_limit_override", "api_keys_limit_override", "rate_tier_override", "created_at",
    )
    list_filter = ("verification_tier", "verification_status")
    search_fields = ("name", "public_id", "registered_email")
    # Tier and status change only through the verification review (audited, emailed);
    # staff edit the overrides agreed through Contact Sales here.
    readonly_fields = (
        "public_id", "verification_tier", "verification_status", "cumulative_topups", "created_by", "created_at",
    )
    fieldsets = (
        (None, {"fields": ("public_id", "name", "registered_email", "created_by", "created_at")}),
        ("Information", {"fields": ("legal_address", "country", "tax_number", "website")}),
        ("Verification", {"fields": ("verification_tier", "verification_status")}),
        (
            "Limits (blank = the tier's limit)",
            {
                "fields": (
                    "projects_limit_override", "api_keys_limit_override", "rate_tier_override", "cumulative_topups",
                )
            },
        ),
    )
    inlines = [MembershipInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # organizations are created by their first administrator in the console

    def has_delete_permission(self, request: HttpRequest, obj: Organization | None = None) -> bool:
        return False  # the ledger, invoices and the audit trail hang below an organization

    def save_model(self, request: HttpRequest, obj: Organization, form: Any, change: bool) -> None:
        # Through the audited services, as if the organization's own admins changed it.
        changed = form.changed_data
        info = {field: form.cleaned_data[field] for field in ORGANIZATION_INFO_FIELDS if field in changed}
        limits = {field: form.cleaned_data[field] for field in ORGANIZATION_LIMIT_FIELDS if field in changed}
        try:
            if info:
                organization_update(organization=obj, actor=request.user, data=info)  # type: ignore[arg-type]
            if limits:
                organization_limits_update(organization=obj, actor=request.user, data=limits)  # type: ignore[arg-type]
        except DomainError as error:
            self.message_user(request, error.message, messages.ERROR)


@admin.register(VerificationRequest)
class VerificationRequestAdmin(admin.ModelAdmin[VerificationRequest]):
    list_display = ("legal_name", "organization", "country", "status", "submitted_at", "reviewed_at")
    list_filter = ("status",)
    search_fields = ("legal_name", "registration_number", "organization__name", "organization__public_id")
    list_select_related = ("organization",)
    actions = ["approve_selected", "reject_selected"]
    fields = (
        "organization", "status", "legal_name", "registration_number", "country", "address",
        "contact_name", "contact_email", "contact_phone", "document_link", "document_content_type",
        "document_size", "submitted_by", "submitted_at", "reviewed_by", "reviewed_at", "rejection_reason",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: VerificationRequest | None = None) -> bool:
        return False

    @admin.display(description="Document")
    def document_link(self, obj: VerificationRequest) -> str:
        url = reverse(
            "orgs:verification_document", kwargs={"org_id": obj.organization.public_id, "request_id": obj.pk}
        )
        return format_html('<a href="{}">{}</a>', url, obj.document_name)

    @admin.action(description="Approve selected requests (Enterprise Verified)")
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[VerificationRequest]) -> None:
        approved = 0
        for item in queryset:
            try:
                verification_approve(request=item, actor=request.user)  # type: ignore[arg-type]
                approved += 1
            except DomainError as error:
                self.message_user(request, f"{item.legal_name}: {error.message}", messages.WARNING)
        if approved:
            self.message_user(request, f"Approved {approved} request(s); the organizations were emailed.")

    @admin.action(description="Reject selected requests (asks for a reason)")
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[VerificationRequest]) -> HttpResponse | None:
        form = VerificationRejectForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            rejected = 0
            for item in queryset:
                try:
                    verification_reject(
                        request=item, actor=request.user, reason=form.cleaned_data["reason"]  # type: ignore[arg-type]
                    )
                    rejected += 1
                except DomainError as error:
                    self.message_user(request, f"{item.legal_name}: {error.message}", messages.WARNING)
            if rejected:
                self.message_user(request, f"Rejected {rejected} request(s); the organizations were emailed why.")
            return None
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": "Reject verification requests",
            "opts": self.model._meta,
            "queryset": queryset,
            "form": form,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/orgs/verificationrequest/reject.html", context)


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin[Invitation]):
    list_display = ("email", "organization", "role", "status_label", "invited_by", "sent_at", "expires_at")
    search_fields = ("email", "organization__name", "organization__public_id")
    list_select_related = ("organization", "invited_by")
    fields = (
        "organization", "email", "role", "hint", "status_label", "invited_by", "created_at", "sent_at",
        "send_count", "expires_at", "accepted_at", "accepted_by", "revoked_at", "revoked_by", "project_grants",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Invitation | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Invitation | None = None) -> bool:
        return False  # audited: revoking (by the organization's admins) is how an invitation ends

    @admin.display(description="Status")
    def status_label(self, obj: Invitation) -> str:
        return obj.get_status_display()


@admin.register(ContactSalesRequest)
class ContactSalesRequestAdmin(admin.ModelAdmin[ContactSalesRequest]):
    list_display = ("created_at", "company", "need", "name", "email", "organization", "handled_at")
    list_filter = ("need", ("handled_at", admin.EmptyFieldListFilter))
    search_fields = ("company", "email", "name", "organization__name", "organization__public_id")
    list_select_related = ("organization",)
    readonly_fields = ("organization", "user", "name", "email", "company", "need", "message", "created_at")
    fields = (*readonly_fields, "handled_at", "staff_notes")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ContactSalesRequest | None = None) -> bool:
        return False  # audited: marking it handled (through the service) is how a request ends

    def save_model(self, request: HttpRequest, obj: ContactSalesRequest, form: Any, change: bool) -> None:
        # Through the audited service: who marked it handled, and when, stays on record.
        try:
            contact_sales_request_update(
                request=obj,
                actor=request.user,  # type: ignore[arg-type]
                handled_at=form.cleaned_data["handled_at"],
                staff_notes=form.cleaned_data["staff_notes"],
            )
        except DomainError as error:
            self.message_user(request, error.message, messages.ERROR)
