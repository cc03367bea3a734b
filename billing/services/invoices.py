"""Invoices: org admins request them (a top-up, or a calendar month of usage); staff issue them.

Issuing takes the year's counter row under a lock and creates the invoice, its lines and its PDF
in that same transaction, so numbers are gapless and unique (INV-2026-000123): a failure rolls
the number back with everything else. An issued invoice is never changed; a correction is a new
invoice. Amounts are rounded half-up to the cent per line; the total is the sum of the lines, so
the printed invoice adds up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import structlog
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from console.models import User
from console.pdf import render_pdf
from console.services import absolute_url, email_enqueue
from orgs.models import Organization
from orgs.services import audit_record

from ..models import (
    Invoice,
    InvoiceCounter,
    InvoiceKind,
    InvoiceLine,
    InvoiceRequest,
    InvoiceStatus,
    LedgerEntry,
    LedgerKind,
    UsageRollup,
)
from ..money import ZERO, format_money, quantize_cent

logger = structlog.get_logger(__name__)

BILLING_FIELDS = ("billing_name", "billing_address", "billing_country", "billing_tax_number", "billing_email")
_FIELD_LIMITS = {"billing_name": 200, "billing_address": 500, "billing_country": 100, "billing_tax_number": 50}


def _month_bounds(month: date) -> tuple[datetime, datetime]:
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    end = datetime(month.year + (month.month == 12), month.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _clean_details(details: Mapping[str, str]) -> dict[str, str]:
    cleaned = {name: str(details.get(name, "")).strip() for name in BILLING_FIELDS}
    errors: dict[str, str] = {}
    if not cleaned["billing_name"]:
        errors["billing_name"] = "Enter the name to bill."
    for name, limit in _FIELD_LIMITS.items():
        if len(cleaned[name]) > limit:
            errors[name] = f"Keep this under {limit} characters."
    try:
        validate_email(cleaned["billing_email"])
    except ValidationError:
        errors["billing_email"] = "Enter a valid email address."
    if errors:
        raise ValidationError(errors)
    return cleaned


@transaction.atomic
def invoice_request_create(
    *,
    organization: Organization,
    actor: User,
    kind: str,
    details: Mapping[str, str],
    ledger_entry: LedgerEntry | None = None,
    month: date | None = None,
) -> InvoiceRequest:
    """Request an invoice for one of the organization's top-ups or for one ended calendar month
    with usage. One live (requested or issued) request per top-up or month."""
    cleaned = _clean_details(details)
    if kind == InvoiceKind.TOPUP:
        theirs = ledger_entry is not None and ledger_entry.organization_id == organization.pk
        if not theirs or ledger_entry is None or ledger_entry.kind != LedgerKind.TOPUP:
            raise ValidationError({"ledger_entry": "Choose one of this organization's top-ups."})
        month = None
        live = Q(ledger_entry=ledger_entry)
    elif kind == InvoiceKind.USAGE:
        if month is None:
            raise ValidationError({"month": "Choose a month."})
        month = month.replace(day=1)
        if month >= timezone.now().astimezone(UTC).date().replace(day=1):
            raise ValidationError({"month": "A month can be invoiced once it has ended."})
        ledger_entry = None
        live = Q(organization=organization, month=month)
    else:
        raise ValidationError({"kind": "Choose a top-up or a month of usage."})
    taken = "An invoice for this {} is already {}."
    existing = InvoiceRequest.objects.filter(live).exclude(status=InvoiceStatus.REJECTED).first()
    what = "top-up" if kind == InvoiceKind.TOPUP else "month"
    if existing is not None:
        raise ValidationError({"ledger_entry" if what == "top-up" else "month": taken.format(what, existing.status)})
    try:
        with transaction.atomic():
            request = InvoiceRequest.objects.create(
                organization=organization, kind=kind, ledger_entry=ledger_entry, month=month,
                requested_by=actor, **cleaned,
            )
    except IntegrityError:  # the same request committed meanwhile (a double submit)
        raise ValidationError(
            {"ledger_entry" if what == "top-up" else "month": taken.format(what, "requested")}
        ) from None
    audit_record(
        actor=actor, organization=organization, action="invoice.request", target=request,
        after={"kind": kind, "subject": request.subject, **cleaned},
    )
    return request


@dataclass(frozen=True)
class _Line:
    description: str
    quantity: str
    amount: Decimal


def _topup_lines(request: InvoiceRequest) -> list[_Line]:
    entry = request.ledger_entry
    if entry is None:  # excluded by the model's check constraint
        raise ValidationError(f"Invoice request {request.pk} has no top-up.")
    return [_Line(
        description=f"Prepaid balance top-up on {entry.created_at:%b} {entry.created_at.day}, {entry.created_at.year} "
                    f"(reference {entry.reference})",
        quantity="1",
        amount=quantize_cent(entry.amount),
    )]


def _usage_lines(request: InvoiceRequest) -> list[_Line]:
    if request.month is None:  # excluded by the model's check constraint
        raise ValidationError(f"Invoice request {request.pk} has no month.")
    start, end = _month_bounds(request.month)
    rows = (
        UsageRollup.objects.filter(organization_id=request.organization_id, hour__gte=start, hour__lt=end)
        .values("project__name", "project__public_id", "model")
        .annotate(requests=Sum("requests"), input=Sum("input_tokens"), output=Sum("output_tokens"),
                  cost=Sum("cost"), n=Count("id"))
        .order_by("project__name", "project__public_id", "model")
    )
    return [
        _Line(
            description=f"{row['project__name']} ({row['project__public_id']}) — {row['model']}",
            quantity=f"{row['requests']:,} requests · {row['input']:,} in / {row['output']:,} out tokens",
            amount=quantize_cent(row["cost"]),
        )
        for row in rows
    ]


def _next_number(year: int) -> int:
    InvoiceCounter.objects.bulk_create([InvoiceCounter(year=year)], ignore_conflicts=True)
    # The lock on the year's counter is what makes numbers gapless: the next issuer waits until
    # this transaction commits (number used) or rolls back (number free again).
    counter = InvoiceCounter.objects.select_for_update().get(year=year)
    counter.last += 1
    counter.save(update_fields=["last"])
    return counter.last


def _pdf_context(invoice: Invoice, request: InvoiceRequest, lines: list[_Line]) -> dict[str, Any]:
    return {
        "invoice": invoice,
        "request": request,
        "organization": request.organization,
        "lines": lines,
        "total": format_money(invoice.total, currency=invoice.currency),
        "issuer_lines": settings.CONSOLE_INVOICE_ISSUER.replace("\\n", "\n").splitlines(),
        "currency": invoice.currency,
    }


def invoice_issue(*, request_id: int, actor: User | None) -> Invoice:
    """Issue the requested invoice: number, lines, total, PDF; the registered email is told.

    Refused (ValidationError) when the request is not pending or has nothing to invoice.
    """
    with transaction.atomic():
        request = (
            InvoiceRequest.objects.select_for_update(of=("self",))
            .select_related("organization", "ledger_entry")
            .filter(pk=request_id)
            .first()
        )
        if request is None:
            raise ValidationError(f"No invoice request {request_id}.")
        if request.status != InvoiceStatus.REQUESTED:
            raise ValidationError(f"Invoice request {request_id} is already {request.status}.")
        lines = _topup_lines(request) if request.kind == InvoiceKind.TOPUP else _usage_lines(request)
        if not lines:
            raise ValidationError(f"Invoice request {request_id} has no usage to invoice in {request.month:%B %Y}.")
        total = sum((line.amount for line in lines), ZERO)
        now = timezone.now()
        year = now.astimezone(UTC).year
        sequence = _next_number(year)
        invoice = Invoice(
            request=request, organization=request.organization, number=f"INV-{year}-{sequence:06d}",
            year=year, sequence=sequence, issued_at=now, issued_by=actor, currency=settings.CONSOLE_CURRENCY,
            total=quantize_cent(total),
        )
        invoice.pdf = render_pdf("pdf/invoice.html", _pdf_context(invoice, request, lines))
        invoice.save()
        InvoiceLine.objects.bulk_create(
            InvoiceLine(invoice=invoice, position=i, description=line.description[:300], quantity=line.quantity[:100],
                        amount=line.amount)
            for i, line in enumerate(lines, start=1)
        )
        request.status = InvoiceStatus.ISSUED
        request.decided_by = actor
        request.decided_at = now
        request.save(update_fields=["status", "decided_by", "decided_at"])
        organization = request.organization
        audit_record(
            actor=actor, organization=organization, action="invoice.issue", target=invoice,
            after={"number": invoice.number, "total": str(invoice.total), "request": request.pk},
        )
        email_enqueue(
            to=[organization.registered_email],
            template="invoice_ready",
            context={
                "org_name": organization.name,
                "org_id": organization.public_id,
                "number": invoice.number,
                "subject": request.subject,
                "total": format_money(invoice.total, currency=invoice.currency),
                "billing_url": absolute_url("billing:overview", org_id=organization.public_id),
            },
            unique_key=f"invoice_ready:{invoice.number}",
            organization_ref=organization.public_id,
        )
    logger.info("invoice_issued", number=invoice.number, organization=organization.public_id)
    return invoice


@transaction.atomic
def invoice_request_reject(*, request_id: int, actor: User | None, reason: str) -> InvoiceRequest:
    """Reject a pending request with a reason the org admins see; they may request again."""
    reason = reason.strip()
    if not reason or len(reason) > 500:
        raise ValidationError({"rejection_reason": "Give a reason of 1 to 500 characters."})
    request = InvoiceRequest.objects.select_for_update().filter(pk=request_id).first()
    if request is None:
        raise ValidationError(f"No invoice request {request_id}.")
    if request.status != InvoiceStatus.REQUESTED:
        raise ValidationError(f"Invoice request {request_id} is already {request.status}.")
    request.status = InvoiceStatus.REJECTED
    request.rejection_reason = reason
    request.decided_by = actor
    request.decided_at = timezone.now()
    request.save(update_fields=["status", "rejection_reason", "decided_by", "decided_at"])
    audit_record(
        actor=actor, organization=request.organization, action="invoice.reject", target=request,
        after={"reason": reason},
    )
    return request
