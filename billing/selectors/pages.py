"""Reads for the Billing pages: summary, ledger, prices, the balance banner and invoices."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from orgs.limits import RateLimits, organization_rate_limits
from orgs.models import Organization

from ..models import AlertState, BillingAccount, InvoiceRequest, InvoiceStatus, LedgerEntry, LedgerKind, Price
from ..money import ZERO
from ..timeutils import today_utc


@dataclass(frozen=True)
class BillingSummary:
    balance: Decimal
    cumulative_topups: Decimal
    rate_limits: RateLimits
    month_usage: Decimal  # usage charged this UTC month (positive)


def billing_summary(*, organization: Organization) -> BillingSummary:
    account = BillingAccount.objects.filter(organization=organization).only("balance").first()
    today = today_utc()
    charged = LedgerEntry.objects.filter(
        organization=organization, kind=LedgerKind.USAGE, usage_date__gte=today.replace(day=1)
    ).aggregate(total=Sum("amount"))["total"]
    return BillingSummary(
        balance=account.balance if account else ZERO,
        cumulative_topups=organization.cumulative_topups,
        rate_limits=organization_rate_limits(organization),
        month_usage=-(charged or ZERO),
    )


def ledger_entries(
    *,
    organization: Organization,
    kind: str = "",
    date_from: date | None = None,
    date_to: date | None = None,
) -> QuerySet[LedgerEntry]:
    """The organization's ledger, last posted first; dates are UTC days, both ends included."""
    entries = LedgerEntry.objects.filter(organization=organization)
    if kind:
        entries = entries.filter(kind=kind)
    if date_from:
        entries = entries.filter(created_at__gte=datetime.combine(date_from, time.min, tzinfo=UTC))
    if date_to:
        entries = entries.filter(created_at__lt=datetime.combine(date_to + timedelta(days=1), time.min, tzinfo=UTC))
    return entries.order_by("-id")


def prices_in_force(*, at: datetime | None = None) -> list[Price]:
    """The price of each model at `at` (default now): the newest row that has taken effect."""
    at = at or timezone.now()
    latest: dict[str, Price] = {}
    for price in Price.objects.filter(effective_from__lte=at).order_by("model", "-effective_from"):
        latest.setdefault(price.model, price)
    return list(latest.values())


def balance_banner(*, organization_id: int) -> str:
    """What the console's banner says to org admins: "exhausted" at or below zero, "low" while
    the balance alert is fired, else "". One query."""
    row = (
        BillingAccount.objects.filter(organization_id=organization_id)
        .values_list("balance", "organization__balance_alert__state", "organization__balance_alert__enabled")
        .first()
    )
    if row is None:  # never funded: the Billing page explains how to top up
        return ""
    balance, state, enabled = row
    if balance <= 0:
        return "exhausted"
    if state == AlertState.FIRED and enabled:
        return "low"
    return ""


def invoice_requests_for(*, organization: Organization) -> QuerySet[InvoiceRequest]:
    """The organization's invoice requests, newest first, with their invoice (if issued) and
    `pdf_ready`."""
    return (
        InvoiceRequest.objects.filter(organization=organization)
        .select_related("invoice", "ledger_entry")
        .defer("invoice__pdf")
        # An issued invoice's PDF is rendered after commit: until then it is "being prepared".
        .annotate(pdf_ready=ExpressionWrapper(Q(invoice__pdf__isnull=False), output_field=BooleanField()))
        .order_by("-requested_at", "-id")
    )


def _live_invoice_request() -> Exists:
    return Exists(
        InvoiceRequest.objects.filter(ledger_entry=OuterRef("pk")).exclude(status=InvoiceStatus.REJECTED)
    )


def invoiceable_topups(*, organization: Organization) -> QuerySet[LedgerEntry]:
    """Top-ups with no live (requested or issued) invoice request."""
    return (
        LedgerEntry.objects.filter(organization=organization, kind=LedgerKind.TOPUP)
        .exclude(_live_invoice_request())
        .order_by("-id")
    )


def with_invoice_state(entries: QuerySet[LedgerEntry]) -> QuerySet[LedgerEntry]:
    """Ledger rows with `invoice_requested`: a top-up already has a live invoice request."""
    return entries.annotate(invoice_requested=_live_invoice_request())


def invoiceable_months(*, organization: Organization, today: date | None = None) -> list[date]:
    """Ended calendar months with usage charges and no live invoice request, newest first."""
    this_month = (today or today_utc()).replace(day=1)
    months = {
        d.replace(day=1)
        for d in LedgerEntry.objects.filter(
            organization=organization, kind=LedgerKind.USAGE, usage_date__lt=this_month
        ).dates("usage_date", "month")
    }
    taken = set(
        InvoiceRequest.objects.filter(organization=organization, month__isnull=False)
        .exclude(status=InvoiceStatus.REJECTED)
        .values_list("month", flat=True)
    )
    return sorted(months - taken, reverse=True)


def billing_details_initial(*, organization: Organization) -> dict[str, str]:
    """The organization's information, as an invoice request form's starting point."""
    return {
        "billing_name": organization.name,
        "billing_address": organization.legal_address,
        "billing_country": str(organization.country.name) if organization.country else "",
        "billing_tax_number": organization.tax_number,
        "billing_email": organization.registered_email,
    }



def issuer_lines() -> list[str]:
    """Who issues invoices and receipts, line by line, for the top of every billing PDF."""
    return settings.CONSOLE_INVOICE_ISSUER.replace("\\n", "\n").splitlines()
