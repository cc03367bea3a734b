"""Staff tools: prices (add-only: history is kept), top-ups and other ledger postings, read-only usage.

Every write goes through the same services as the management commands, so it is validated,
locked and audited the same way. Ledger rows and prices are never edited or deleted here.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from console.errors import DomainError, form_add_error
from console.fields import AsciiDecimalField
from orgs.limits import organization_rate_limits
from orgs.models import Organization

from .models import (
    BillingAccount,
    Invoice,
    InvoiceLine,
    InvoiceRequest,
    InvoiceStatus,
    LedgerEntry,
    LedgerKind,
    Price,
    UsageBatch,
)
from .money import format_money
from .services.invoices import invoice_issue, invoice_request_reject
from .services.ledger import ledger_staff_post
from .services.prices import price_set


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Price)
class PriceAdmin(ReadOnlyAdmin):
    list_display = ("model", "input_per_mtok", "output_per_mtok", "effective_from", "created_by")
    list_filter = ("model",)
    search_fields = ("model",)
    date_hierarchy = "effective_from"
    fields = ("model", "input_per_mtok", "output_per_mtok", "effective_from")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("billing.add_price"))

    def save_model(self, request: HttpRequest, obj: Price, form: forms.ModelForm, change: bool) -> None:  # type: ignore[type-arg]
        # The form validated the row (unique model + start, non-negative); the service records it.
        saved = price_set(
            model=obj.model,
            input_per_mtok=obj.input_per_mtok,
            output_per_mtok=obj.output_per_mtok,
            effective_from=obj.effective_from,
            actor=request.user,  # type: ignore[arg-type]
        )
        obj.pk = saved.pk


class LedgerPostForm(forms.Form):
    organization_id = forms.CharField(label="Organization ID", max_length=32, help_text="org-…")
    kind = forms.ChoiceField(
        label="Type",
        choices=[(k.value, k.label) for k in (LedgerKind.TOPUP, LedgerKind.ADJUSTMENT, LedgerKind.REFUND)],
    )
    amount = AsciiDecimalField(
        label="Amount", max_digits=18, decimal_places=6,
        help_text="Top-up and refund: a positive amount (a refund takes it off the balance). "
                  "Adjustment: negative to take money off.",
    )
    reference = forms.CharField(label="Reference", max_length=100, help_text="Unique, e.g. the payment id.")
    memo = forms.CharField(label="Memo", max_length=200, required=False, help_text="Shown on the customer's ledger.")

    def clean_organization_id(self) -> Organization:
        value = self.cleaned_data["organization_id"].strip()
        organization = Organization.objects.filter(public_id=value).first()
        if organization is None:
            raise ValidationError(f"No organization with ID {value}.")
        return organization


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "organization", "kind", "amount", "balance_after", "reference", "memo")
    list_filter = ("kind",)
    search_fields = ("reference", "organization__public_id", "organization__name")
    list_select_related = ("organization",)
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("billing.add_ledgerentry"))

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The admin's "Add ledger entry" posts through ledger_staff_post: a top-up, adjustment or refund."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        initial = {"organization_id": request.GET.get("organization", ""), "kind": LedgerKind.TOPUP}
        form = LedgerPostForm(request.POST or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                result = ledger_staff_post(
                    organization=data["organization_id"], kind=data["kind"], amount=data["amount"],
                    reference=data["reference"], memo=data["memo"], actor=request.user,  # type: ignore[arg-type]
                )
            except DomainError as exc:
                form_add_error(form, exc)
            else:
                entry = result.entry
                if result.created:
                    self.message_user(
                        request,
                        f"{entry.get_kind_display()} of {format_money(entry.amount)} posted to "
                        f"{data['organization_id'].name}; balance is now {format_money(entry.balance_after)}.",
                        messages.SUCCESS,
                    )
                else:
                    self.message_user(
                        request,
                        f"Reference {entry.reference} was already posted on {entry.created_at:%Y-%m-%d %H:%M} UTC: "
                        "nothing changed.",
                        messages.WARNING,
                    )
                return HttpResponseRedirect(reverse("admin:billing_ledgerentry_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Post a top-up, adjustment or refund",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/billing/ledger_post.html", context)


@admin.register(BillingAccount)
class BillingAccountAdmin(ReadOnlyAdmin):
    list_display = ("organization", "balance_display", "cumulative_topups", "rate_tier", "updated_at", "top_up")
    search_fields = ("organization__public_id", "organization__name")
    list_select_related = ("organization",)
    actions = ["post_ledger_entry"]

    @admin.display(description="balance", ordering="balance")
    def balance_display(self, obj: BillingAccount) -> str:
        return format_money(obj.balance)

    @admin.display(description="cumulative top-ups")
    def cumulative_topups(self, obj: BillingAccount) -> str:
        return format_money(obj.organization.cumulative_topups)

    @admin.display(description="rate tier")
    def rate_tier(self, obj: BillingAccount) -> str:
        return organization_rate_limits(obj.organization).tier

    @admin.display(description="")
    def top_up(self, obj: BillingAccount) -> str:
        url = reverse("admin:billing_ledgerentry_add") + f"?organization={obj.organization.public_id}"
        return format_html('<a href="{}">Post a top-up…</a>', url)

    @admin.action(description="Post a top-up, adjustment or refund to the selected organization")
    def post_ledger_entry(self, request: HttpRequest, queryset: Any) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one organization to post to.", messages.ERROR)
            return None
        account = queryset.select_related("organization").get()
        url = reverse("admin:billing_ledgerentry_add") + f"?organization={account.organization.public_id}"
        return HttpResponseRedirect(url)


@admin.register(UsageBatch)
class UsageBatchAdmin(ReadOnlyAdmin):
    list_display = ("id", "received_at", "events", "folded_at")
    list_filter = (("folded_at", admin.EmptyFieldListFilter),)


class InvoiceLineInline(admin.TabularInline):  # type: ignore[type-arg]
    model = InvoiceLine
    extra = 0
    can_delete = False
    fields = ("position", "description", "quantity", "amount")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(InvoiceRequest)
class InvoiceRequestAdmin(ReadOnlyAdmin):
    """Staff issue (or reject) requests here; issuing goes through invoice_issue, like the command."""

    list_display = ("id", "organization", "subject", "status", "requested_at", "requested_by", "invoice_link")
    list_filter = ("status", "kind")
    search_fields = ("organization__public_id", "organization__name", "billing_name")
    list_select_related = ("organization", "ledger_entry", "requested_by", "invoice")
    actions = ["issue_invoices", "reject_requests"]
    readonly_fields = (
        "organization", "kind", "ledger_entry", "month", "billing_name", "billing_address", "billing_country",
        "billing_tax_number", "billing_email", "status", "rejection_reason", "requested_by", "requested_at",
        "decided_by", "decided_at",
    )

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_staff)

    @admin.display(description="invoice")
    def invoice_link(self, obj: InvoiceRequest) -> str:
        if obj.status != InvoiceStatus.ISSUED:
            return "—"
        url = reverse("billing:invoice_download", args=[obj.organization.public_id, obj.invoice.number])
        return format_html('<a href="{}">{} (PDF)</a>', url, obj.invoice.number)

    @admin.action(description="Issue invoices for the selected requests")
    def issue_invoices(self, request: HttpRequest, queryset: Any) -> None:
        if not request.user.has_perm("billing.add_invoice"):
            raise PermissionDenied
        for pk in queryset.order_by("pk").values_list("pk", flat=True):
            try:
                invoice = invoice_issue(request_id=pk, actor=request.user)  # type: ignore[arg-type]
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(
                    request, f"Issued {invoice.number} ({format_money(invoice.total)}) for request {pk}.",
                    messages.SUCCESS,
                )


    @admin.action(description="Reject the selected requests (asks for the reason)")
    def reject_requests(self, request: HttpRequest, queryset: Any) -> HttpResponse | None:
        if not request.user.has_perm("billing.change_invoicerequest"):
            raise PermissionDenied
        form = InvoiceRejectForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            for pk in queryset.order_by("pk").values_list("pk", flat=True):
                try:
                    invoice_request_reject(
                        request_id=pk, actor=request.user, reason=form.cleaned_data["reason"]  # type: ignore[arg-type]
                    )
                except DomainError as exc:
                    self.message_user(request, exc.message, messages.ERROR)
                else:
                    self.message_user(request, f"Rejected invoice request {pk}.", messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Reject invoice requests",
            "form": form,
            "opts": self.model._meta,
            "requests": queryset,
            "action": "reject_requests",
        }
        return TemplateResponse(request, "admin/billing/invoice_reject.html", context)


class InvoiceRejectForm(forms.Form):
    reason = forms.CharField(
        label="Reason", max_length=500, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Shown to the organization's admins on their Billing page.",
    )


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    list_display = ("number", "organization", "issued_at", "total", "download")
    search_fields = ("number", "organization__public_id", "organization__name")
    list_select_related = ("organization",)
    exclude = ("pdf",)
    inlines = [InvoiceLineInline]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_staff)

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).defer("pdf")

    @admin.display(description="PDF")
    def download(self, obj: Invoice) -> str:
        url = reverse("billing:invoice_download", args=[obj.organization.public_id, obj.number])
        return format_html('<a href="{}">Download</a>', url)


from . import payment_admin  # noqa: E402, F401  (card payments: registered by that module)
