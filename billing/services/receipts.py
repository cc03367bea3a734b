"""Receipts of card top-ups: the PDF (amount, card brand and last 4, date, organization) and the
email to the organization's registered address, which carries the PDF (rendered when the email is
sent, through the outbox's attachment kind `card_receipt`) and a link to download it again.
"""

from __future__ import annotations

from console.pdf import render_pdf
from console.services import Attachment, absolute_url, email_enqueue

from ..models import CardPayment, PaymentStatus
from ..money import format_money
from ..selectors.pages import issuer_lines


def receipt_pdf(payment: CardPayment) -> bytes:
    """The receipt of a credited card payment, rendered now (refunds posted so far are on it)."""
    return render_pdf("pdf/receipt.html", {
        "payment": payment, "organization": payment.organization, "issuer_lines": issuer_lines(),
    })


def receipt_filename(payment: CardPayment) -> str:
    return f"receipt-{payment.payment_intent_id}.pdf"


RECEIPT_ATTACHMENT = "card_receipt"


def receipt_attachment(ref: str) -> Attachment | None:
    """The outbox's renderer for `card_receipt` attachments (`ref`: the payment's id): the receipt
    PDF as it stands when the email is sent; None when the payment is gone or was never credited."""
    payment = (
        CardPayment.objects.select_related("organization")
        .filter(pk=int(ref), status=PaymentStatus.SUCCEEDED).first() if ref.isdigit() else None
    )
    if payment is None:
        return None
    return Attachment(filename=receipt_filename(payment), content=receipt_pdf(payment), mimetype="application/pdf")


def card_receipt_email_enqueue(*, payment: CardPayment) -> None:
    """Queue the receipt email of a payment just credited, in the caller's transaction (once per
    PaymentIntent: the outbox key is derived from it); the PDF is attached when it is sent."""
    organization = payment.organization
    intent_id = payment.payment_intent_id
    email_enqueue(
        to=[organization.registered_email],
        template="card_receipt",
        context={
            "org_name": organization.name,
            "org_id": organization.public_id,
            "amount": format_money(payment.amount),
            "card": payment.card_label,
            "kind": payment.get_kind_display(),
            "date": f"{payment.succeeded_at:%b %-d, %Y %H:%M} UTC",
            "receipt_url": absolute_url("billing:receipt", org_id=organization.public_id, intent_id=intent_id),
            "billing_url": absolute_url("billing:overview", org_id=organization.public_id),
        },
        unique_key=f"card_receipt:{intent_id}",
        organization_ref=organization.public_id,
        attachments=[(RECEIPT_ATTACHMENT, str(payment.pk))],
    )
