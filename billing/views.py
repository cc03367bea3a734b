"""Billing's pages: the ledger (with CSV), balance alerts, invoice requests and downloads, the
consumption charts and the rate-limit gauges. Card payments' pages are in payment_views.py."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from console.errors import DomainError, form_add_error
from console.http import AuthedHttpRequest
from console.paging import paginate
from orgs.limits import organization_rate_limits
from orgs.models import Membership, Role
from orgs.permissions import access_organization
from projects.permissions import access_project

from .forms import BalanceAlertForm, InvoiceRequestForm, LedgerFilterForm, UsageRangeForm
from .models import BalanceAlert, InvoiceKind, LedgerEntry
from .permissions import access_invoice
from .ratelimits import rate_limit_gauges
from .selectors.alerts import balance_alert_for
from .selectors.pages import (
    billing_details_initial,
    billing_summary,
    invoice_requests_for,
    invoiceable_months,
    invoiceable_topups,
    ledger_entries,
    prices_in_force,
    with_invoice_state,
)
from .selectors.payments import payments_summary
from .selectors.runway import runway_forecast
from .selectors.usage import USAGE_RANGES, organization_usage, project_usage
from .services.alerts import balance_alert_update
from .services.invoices import BILLING_FIELDS, invoice_request_create

LEDGER_PAGE_SIZE = 25
INVOICES_SHOWN = 50


def _ledger(request: AuthedHttpRequest, org_id: str) -> tuple[Membership, LedgerFilterForm, QuerySet[LedgerEntry]]:
    """Org admins only: the membership, the filter form and the filtered ledger."""
    membership = access_organization(request.user, org_id, min_role=Role.ADMIN)
    form = LedgerFilterForm(request.GET)
    return membership, form, ledger_entries(organization=membership.organization, **form.filters())


@login_required
@require_GET
def billing_overview(request: AuthedHttpRequest, org_id: str) -> HttpResponse:
    membership, form, entries = _ledger(request, org_id)
    organization = membership.organization
    page, query = paginate(request, with_invoice_state(entries), per_page=LEDGER_PAGE_SIZE)
    context = {"membership": membership, "org": organization, "form": form, "page": page, "query": query}
    if request.htmx:
        return render(request, "billing/overview.html#ledger-table", context)
    summary = billing_summary(organization=organization)
    context.update(
        summary=summary,
        prices=prices_in_force(),
        invoice_requests=invoice_requests_for(organization=organization)[:INVOICES_SHOWN],
        sales_email=settings.CONSOLE_SALES_EMAIL,
        **payments_summary(organization=organization),
    )
    context["runway"] = runway_forecast(organization_id=organization.pk, balance=summary.balance)
    return render(request, "billing/overview.html", context)


class _Echo:
    """A file-like object whose write() hands the line back, so csv.writer can stream."""

    def write(self, value: str) -> str:
        return value


# A spreadsheet would run a cell that starts with one of these as a formula.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _text_cell(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_PREFIXES) else value


def _ledger_rows(entries: Iterator[LedgerEntry]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    currency = settings.CONSOLE_CURRENCY
    yield writer.writerow(
        ["date_utc", "type", "amount", "balance_after", "currency", "reference", "memo", "usage_date"]
    )
    for entry in entries:
        yield writer.writerow(
            [
                entry.created_at.astimezone(UTC).isoformat(),
                entry.kind,
                f"{entry.amount:f}",
                f"{entry.balance_after:f}",
                currency,
                _text_cell(entry.reference),
                _text_cell(entry.memo),
                entry.usage_date.isoformat() if entry.usage_date else "",
            ]
        )


@login_required
@require_GET
def ledger_csv(request: AuthedHttpRequest, org_id: str) -> StreamingHttpResponse:
    membership, _form, entries = _ledger(request, org_id)
    organization = membership.organization
    rows = _ledger_rows(entries.iterator(chunk_size=2000))
    filename = f"ledger-{organization.public_id}-{datetime.now(tz=UTC):%Y%m%d}.csv"
    return StreamingHttpResponse(
        rows,
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@login_required
@require_http_methods(["GET", "POST"])
def balance_alerts(request: AuthedHttpRequest, org_id: str) -> HttpResponse:
    membership = access_organization(request.user, org_id, min_role=Role.ADMIN)
    organization = membership.organization
    alert = balance_alert_for(organization=organization)
    if request.method == "POST":
        form = BalanceAlertForm(request.POST)
        if form.is_valid():
            try:
                alert = balance_alert_update(organization=organization, actor=request.user, **form.cleaned_data)
            except DomainError as exc:
                form_add_error(form, exc)
            else:
                messages.success(request, "Balance alert settings saved.")
                if not request.htmx:
                    return redirect("billing:balance_alerts", org_id=organization.public_id)
                form = _balance_alert_form(alert)
    else:
        form = _balance_alert_form(alert)
    context = {
        "membership": membership, "org": organization, "form": form, "alert": alert,
        "balance": billing_summary(organization=organization).balance,
    }
    template = "billing/balance_alerts.html#alert-panel" if request.htmx else "billing/balance_alerts.html"
    return render(request, template, context)


def _balance_alert_form(alert: BalanceAlert) -> BalanceAlertForm:
    return BalanceAlertForm(initial={
        "enabled": alert.enabled,
        "threshold": f"{alert.threshold:.2f}",
        "extra_recipients": "\n".join(alert.extra_recipients),
    })


@login_required
@require_http_methods(["GET", "POST"])
def invoice_request(request: AuthedHttpRequest, org_id: str) -> HttpResponse:
    membership = access_organization(request.user, org_id, min_role=Role.ADMIN)
    organization = membership.organization
    choices: dict[str, Any] = {
        "topups": invoiceable_topups(organization=organization),
        "months": invoiceable_months(organization=organization),
    }
    if request.method == "POST":
        form = InvoiceRequestForm(request.POST, **choices)
        if form.is_valid():
            data = form.cleaned_data
            try:
                invoice_request_create(
                    organization=organization, actor=request.user, kind=data["kind"],
                    ledger_entry=data["ledger_entry"], month=data["month"],
                    details={name: data[name] for name in BILLING_FIELDS},
                )
            except DomainError as exc:
                form_add_error(form, exc)
            else:
                messages.success(request, "Invoice requested. We will email the registered address when it is issued.")
                return redirect(reverse("billing:overview", kwargs={"org_id": organization.public_id}) + "#invoices")
    else:
        initial: dict[str, Any] = billing_details_initial(organization=organization)
        if request.GET.get("topup"):
            initial.update(kind=InvoiceKind.TOPUP, ledger_entry=request.GET["topup"])
        form = InvoiceRequestForm(initial=initial, **choices)
    context = {"membership": membership, "org": organization, "form": form, **choices}
    return render(request, "billing/invoice_request.html", context)


@login_required
@require_GET
def invoice_download(request: AuthedHttpRequest, org_id: str, number: str) -> HttpResponse:
    invoice = access_invoice(request.user, org_id, number)
    if invoice.pdf is None:  # rendered after the number is committed: a few seconds at most
        messages.info(request, f"Invoice {invoice.number} is being prepared. Try again in a moment.")
        return redirect(reverse("billing:overview", kwargs={"org_id": org_id}) + "#invoices")
    return HttpResponse(
        bytes(invoice.pdf),
        content_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{invoice.number}.pdf"',
            "Cache-Control": "private, no-store",
        },
    )


# --- consumption (usage) -----------------------------------------------------------------------
# Each overview page loads the panel with htmx (`?embed=overview`), so orgs/ and projects/ need not
# import billing; the same URL without htmx is a full page (no JavaScript, deep links, ?days=).


def _usage_context(request: AuthedHttpRequest, page_url: str) -> dict[str, Any]:
    return {
        "ranges": USAGE_RANGES,
        "page_url": page_url,
        "embedded": bool(request.htmx) and request.GET.get("embed") == "overview",
    }


@login_required
@require_GET
def org_usage(request: AuthedHttpRequest, org_id: str) -> HttpResponse:
    membership = access_organization(request.user, org_id, min_role=Role.ADMIN)
    organization = membership.organization
    days = UsageRangeForm(request.GET).days_or_default()
    context = {
        "membership": membership, "org": organization,
        "report": organization_usage(organization=organization, days=days),
        "runway": runway_forecast(organization_id=organization.pk),
        **_usage_context(request, reverse("billing:org_usage", kwargs={"org_id": organization.public_id})),
    }
    template = "billing/org_usage.html#usage-panel" if request.htmx else "billing/org_usage.html"
    return render(request, template, context)


@login_required
@require_GET
def project_usage_view(request: AuthedHttpRequest, org_id: str, project_id: str) -> HttpResponse:
    access = access_project(request.user, org_id, project_id)
    project = access.project
    days = UsageRangeForm(request.GET).days_or_default()
    report = project_usage(project=project, viewer_id=request.user.pk, viewer_role=access.role, days=days)
    page_url = reverse("billing:project_usage", kwargs={"org_id": org_id, "project_id": project.public_id})
    context = {
        "membership": access.membership, "org": access.organization, "project": project, "access": access,
        "tab": "overview", "report": report, **_usage_context(request, page_url),
    }
    template = "billing/project_usage.html#usage-panel" if request.htmx else "billing/project_usage.html"
    return render(request, template, context)


# --- rate limits (live gauges) ---------------------------------------------------------------------
# The overviews and the Billing page load the gauges with htmx, and the partial refreshes itself
# every few seconds; the same URL without htmx is a full page. Reading the windows consumes nothing.

GAUGES_REFRESH_SECONDS = 3


@login_required
@require_GET
def org_rate_limits(request: AuthedHttpRequest, org_id: str) -> HttpResponse:
    membership = access_organization(request.user, org_id, min_role=Role.ADMIN)
    organization = membership.organization
    rate = organization_rate_limits(organization)
    context = {
        "membership": membership, "org": organization, "rate": rate, "refresh": GAUGES_REFRESH_SECONDS,
        "gauges": rate_limit_gauges(rate=rate, organization_id=organization.public_id),
        "gauges_url": reverse("billing:org_rate_limits", kwargs={"org_id": organization.public_id}),
    }
    template = "billing/rate_limits.html#rate-gauges" if request.htmx else "billing/rate_limits.html"
    return render(request, template, context)


@login_required
@require_GET
def project_rate_limits(request: AuthedHttpRequest, org_id: str, project_id: str) -> HttpResponse:
    access = access_project(request.user, org_id, project_id)
    project = access.project
    rate = organization_rate_limits(access.organization)
    context = {
        "membership": access.membership, "org": access.organization, "project": project, "access": access,
        "rate": rate, "refresh": GAUGES_REFRESH_SECONDS, "tab": "overview",
        "gauges": rate_limit_gauges(rate=rate, organization_id=access.organization.public_id,
                                    project_id=project.public_id, project_tpm=project.tpm_limit,
                                    project_rpm=project.rpm_limit),
        "gauges_url": reverse("billing:project_rate_limits",
                              kwargs={"org_id": org_id, "project_id": project.public_id}),
    }
    template = "billing/project_rate_limits.html#rate-gauges" if request.htmx else "billing/project_rate_limits.html"
    return render(request, template, context)
