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
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from console.errors import DomainError
from console.models import User
from console.pdf import render_pdf
from console.services import absolute_url, email_enqueue
from orgs.audit import audit_record
from orgs.models import Organization
from orgs.permissions import require_org_admin, require_staff

from ..models import (
    Invoice,
    InvoiceCounter,
    InvoiceKind,
    InvoiceLine,
    InvoiceRequest,
    InvoiceStatus,
    LedgerEntry,
    LedgerKind,
    UsageDailyRollup,
)
from ..money import ZERO, format_money, quantize_cent
from ..selectors.pages import issuer_lines

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
        raise DomainError(code="invalid_billing_details", field_errors=errors)
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
    with usage. One live (requested or issued) request per top-up or month. Org admins only."""
    require_org_admin(actor, organization.pk)
    cleaned = _clean_details(details)
    if kind == InvoiceKind.TOPUP:
        theirs = ledger_entry is not None and ledger_entry.organization_id == organization.pk
        if not theirs or ledger_entry is None or ledger_entry.kind != LedgerKind.TOPUP:
            raise DomainError(
                "Choose one of this organization's top-ups.",
                code="invalid_invoice_request", field="ledger_entry",
            )
        month = None
        live = Q(ledger_entry=ledger_entry)
    elif kind == InvoiceKind.USAGE:
        if month is None:
            raise DomainError("Choose a month.", code="invalid_invoice_request", field="month")
        month = month.replace(day=1)
        if month >= timezone.now().astimezone(UTC).date().replace(day=1):
            raise DomainError(
                "A month can be invoiced once it has ended.",
                code="invalid_invoice_request", field="month",
            )
        ledger_entry = None
        live = Q(organization=organization, month=month)
    else:
        raise DomainError("Choose a top-up or a month of usage.", code="invalid_invoice_request", field="kind")
    taken = "An invoice for this {} is already {}."
    existing = InvoiceRequest.objects.filter(live).exclude(status=InvoiceStatus.REJECTED).first()
    what = "top-up" if kind == InvoiceKind.TOPUP else "month"
    if existing is not None:
        raise DomainError(
            taken.format(what, existing.status), code="already_invoiced",
            field="ledger_entry" if what == "top-up" else "month",
        )
    try:
        with transaction.atomic():
            request = InvoiceRequest.objects.create(
                organization=organization, kind=kind, ledger_entry=ledger_entry, month=month,
                requested_by=actor, **cleaned,
            )
    except IntegrityError:  # the same request committed meanwhile (a double submit)
        raise DomainError(
            taken.format(what, "requested"), code="already_invoiced",
            field="ledger_entry" if what == "top-up" else "month",
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
        raise DomainError(f"Invoice request {request.pk} has no top-up.", code="invalid_invoice_request")
    return [_Line(
        description=f"Prepaid balance top-up on {entry.created_at:%b} {entry.created_at.day}, {entry.created_at.year} "
                    f"(reference {entry.reference})",
        quantity="1",
        amount=quantize_cent(entry.amount),
    )]


def _usage_lines(request: InvoiceRequest) -> list[_Line]:
    if request.month is None:  # excluded by the model's check constraint
        raise DomainError(f"Invoice request {request.pk} has no month.", code="invalid_invoice_request")
    start, end = _month_bounds(request.month)
    rows = (
        # The daily per-project-and-model level: days x projects x models rows, not keys x hours.
        UsageDailyRollup.objects.filter(organization_id=request.organization_id, day__gte=start.date(),
                                        day__lt=end.date())
        .values("project__name", "project__public_id", "model")
        .annotate(requests=Sum("requests"), input=Sum("input_tokens"), output=Sum("output_tokens"),
                  cost=Sum("cost"))
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


def _pdf_context(invoice: Invoice) -> dict[str, Any]:
    request = invoice.request
    return {
        "invoice": invoice,
        "request": request,
        "organization": invoice.organization,
        "lines": list(invoice.lines.order_by("position")),
        "total": format_money(invoice.total, currency=invoice.currency),
        "issuer_lines": issuer_lines(),
        "currency": invoice.currency,
    }


def invoice_issue(*, request_id: int, actor: User | None) -> Invoice:
    """Issue the requested invoice: number, lines and total in one transaction; the PDF is rendered
    after commit by a retried task (`invoice_pdf_render`), which then tells the registered email.

    The year's counter stays locked only for the inserts, never while a PDF renders, so concurrent
    issues do not queue behind each other's rendering. Refused (DomainError) when the request
    is not pending or has nothing to invoice. Staff only (or the platform itself, `actor=None`).
    """
    require_staff(actor, "billing.add_invoice")
    with transaction.atomic():
        request = (
            InvoiceRequest.objects.select_for_update(of=("self",))
            .select_related("organization", "ledger_entry")
            .filter(pk=request_id)
            .first()
        )
        if request is None:
            raise DomainError(f"No invoice request {request_id}.", code="not_found")
        if request.status != InvoiceStatus.REQUESTED:
            raise DomainError(f"Invoice request {request_id} is already {request.status}.", code="not_pending")
        lines = _topup_lines(request) if request.kind == InvoiceKind.TOPUP else _usage_lines(request)
        if not lines:
            raise DomainError(
                f"Invoice request {request_id} has no usage to invoice in {request.month:%B %Y}.",
                code="nothing_to_invoice",
            )
        total = sum((line.amount for line in lines), ZERO)
        now = timezone.now()
        year = now.astimezone(UTC).year
        sequence = _next_number(year)
        invoice = Invoice.objects.create(
            request=request, organization=request.organization, number=f"INV-{year}-{sequence:06d}",
            year=year, sequence=sequence, issued_at=now, issued_by=actor, currency=settings.CONSOLE_CURRENCY,
            total=quantize_cent(total), pdf=None,
        )
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
        _schedule_pdf_render(invoice_id=invoice.pk)
    logger.info("invoice_issued", number=invoice.number, organization=organization.public_id)
    return invoice


def _schedule_pdf_render(*, invoice_id: int) -> None:
    from ..tasks import invoice_pdf_render_task  # the task module imports this one

    # robust: a broker that is down must not undo the issued number; beat re-queues missing PDFs.
    transaction.on_commit(lambda: invoice_pdf_render_task.delay(invoice_id), robust=True)


def invoice_pdf_render(*, invoice_id: int) -> bool:
    """Render an issued invoice's PDF (outside any lock), store it, then email the registered
    address that it is ready. Idempotent: an invoice that has its PDF is left alone. Returns
    whether this call stored the PDF."""
    invoice = (
        Invoice.objects.select_related("request", "organization").filter(pk=invoice_id, pdf__isnull=True).first()
    )
    if invoice is None:
        return False
    pdf = render_pdf("pdf/invoice.html", _pdf_context(invoice))  # slow: no transaction is open here
    with transaction.atomic():
        # Only the first renderer stores it (a retried or duplicate task finds it done).
        if not Invoice.objects.filter(pk=invoice_id, pdf__isnull=True).update(pdf=pdf):
            return False
        organization = invoice.organization
        email_enqueue(
            to=[organization.registered_email],
            template="invoice_ready",
            context={
                "org_name": organization.name,
                "org_id": organization.public_id,
                "number": invoice.number,
                "subject": invoice.request.subject,
                "total": format_money(invoice.total, currency=invoice.currency),
                "billing_url": absolute_url("billing:overview", org_id=organization.public_id),
            },
            unique_key=f"invoice_ready:{invoice.number}",
            organization_ref=organization.public_id,
        )
    logger.info("invoice_pdf_rendered", number=invoice.number)
    return True


def invoice_pdfs_render_missing(*, older_than: timedelta = timedelta(minutes=2)) -> int:
    """The beat job: render every invoice whose PDF task was lost (broker down, worker killed)."""
    cutoff = timezone.now() - older_than
    ids = Invoice.objects.filter(pdf__isnull=True, issued_at__lt=cutoff).order_by("id").values_list("id", flat=True)
    return sum(invoice_pdf_render(invoice_id=invoice_id) for invoice_id in ids)


@transaction.atomic
def invoice_request_reject(*, request_id: int, actor: User | None, reason: str) -> InvoiceRequest:
    """Reject a pending request with a reason the org admins see; they may request again. Staff
    only (or the platform itself, `actor=None`)."""
    require_staff(actor, "billing.change_invoicerequest")
    reason = reason.strip()
    if not reason or len(reason) > 500:
        raise DomainError(
            "Give a reason of 1 to 500 characters.",
            code="invalid_invoice_request", field="rejection_reason",
        )
    request = InvoiceRequest.objects.select_for_update().filter(pk=request_id).first()
    if request is None:
        raise DomainError(f"No invoice request {request_id}.", code="not_found")
    if request.status != InvoiceStatus.REQUESTED:
        raise DomainError(f"Invoice request {request_id} is already {request.status}.", code="not_pending")
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
