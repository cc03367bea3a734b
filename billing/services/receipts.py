"""Receipts of card top-ups: the PDF (amount, card brand and last 4, date, organization) and the
email to the organization's registered address that links to it.
"""

from __future__ import annotations

from console.pdf import render_pdf
from console.services import absolute_url, email_enqueue

from ..models import CardPayment
from ..money import format_money
from ..selectors.pages import issuer_lines


def receipt_pdf(payment: CardPayment) -> bytes:
    """The receipt of a credited card payment, rendered now (refunds posted so far are on it)."""
    return render_pdf("pdf/receipt.html", {
        "payment": payment, "organization": payment.organization, "issuer_lines": issuer_lines(),
    })


def receipt_filename(payment: CardPayment) -> str:
    return f"receipt-{payment.payment_intent_id}.pdf"


def card_receipt_email_enqueue(*, payment: CardPayment) -> None:
    """Queue the receipt email of a payment just credited, in the caller's transaction (once per
    PaymentIntent: the outbox key is derived from it)."""
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
    )
