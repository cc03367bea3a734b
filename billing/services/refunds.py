"""Refunds of card top-ups: staff ask Stripe for them (full or partial), and the ledger's refund row
is posted when Stripe's `charge.refunded` arrives, once per refunded cent whatever the order or
repetition of the events.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import stripe
import structlog
from django.db import transaction

from console.errors import DomainError, Forbidden
from console.models import User
from orgs.audit import audit_record

from ..models import BillingAccount, CardPayment, LedgerKind, PaymentStatus
from ..money import CENT, format_money, money_amount_check
from ..stripe_client import from_minor_units, stripe_client, to_minor_units
from .ledger import cumulative_topups_lower, ledger_post
from .payments import card_payment_credit, stripe_object_id

logger = structlog.get_logger(__name__)


@transaction.atomic
def charge_refunded(*, charge: dict[str, Any]) -> str:
    """Post what Stripe refunded beyond what is already posted (the charge carries the running
    total), so repeated or reordered `charge.refunded` events post each refunded cent once."""
    intent_id = stripe_object_id(charge.get("payment_intent"))
    payment = (
        CardPayment.objects.select_for_update().select_related("organization")
        .filter(payment_intent_id=intent_id).exclude(payment_intent_id="").first()
    )
    if payment is None:
        logger.warning("stripe_webhook_unknown_charge", charge=charge.get("id"), payment_intent=intent_id)
        return "unknown"
    if payment.status != PaymentStatus.SUCCEEDED:
        # The refund overtook `payment_intent.succeeded`: a refunded charge was paid, so credit first.
        card_payment_credit(payment, intent_id=intent_id, charge_id=str(charge.get("id", "")))
    refunded = from_minor_units(int(charge.get("amount_refunded") or 0))
    delta = refunded - payment.amount_refunded
    if delta <= 0:
        return "duplicate"
    organization = payment.organization
    reference = f"stripe-refund:{charge.get('id')}:{to_minor_units(refunded)}"
    memo = f"Card refund · {payment.card_label}"
    try:
        ledger_post(organization=organization, kind=LedgerKind.REFUND, amount=delta, reference=reference,
                    actor=None, memo=memo)
    except DomainError:
        # Spent meanwhile: the money went back to the card all the same, so the balance goes below
        # zero by an adjustment (a refund row may not exceed the balance).
        ledger_post(organization=organization, kind=LedgerKind.ADJUSTMENT, amount=-delta, reference=reference,
                    actor=None, memo=f"{memo} (beyond the balance)")
        cumulative_topups_lower(organization_id=organization.pk, amount=delta)  # as a refund row does
    payment.amount_refunded = refunded
    payment.refund_requested = max(payment.refund_requested, refunded)
    payment.save(update_fields=["amount_refunded", "refund_requested"])
    return "refunded"


@transaction.atomic
def card_payment_refund(*, payment: CardPayment, amount: Decimal, actor: User) -> str:
    """Staff refund part or all of a card top-up at Stripe; the ledger's refund row follows with
    `charge.refunded`. Not more than was paid (less earlier refunds) nor than the balance holds.
    The payment row stays locked during the Stripe call, so two refunds of one payment queue."""
    if not actor.is_staff:
        raise Forbidden("Only staff refund payments.")
    payment = CardPayment.objects.select_for_update().select_related("organization").get(pk=payment.pk)
    if payment.status != PaymentStatus.SUCCEEDED:
        raise DomainError("Only a credited card payment can be refunded.", code="not_refundable", field="amount")
    money_amount_check(amount, minimum=CENT, maximum=None)
    if amount > payment.refundable:
        left = format_money(payment.refundable)
        raise DomainError(f"At most {left} of this payment is left to refund.", code="refund_too_large", field="amount")
    # Read, not locked: the Stripe call below is slow, and the refund row is posted later (with
    # charge.refunded) under the ledger's lock, which copes with a balance spent meanwhile.
    account = BillingAccount.objects.get(organization=payment.organization)
    if amount > account.balance:
        raise DomainError(
            f"A refund cannot exceed the balance ({format_money(account.balance)}).", code="refund_exceeds_balance",
            field="amount",
        )
    requested = max(payment.refund_requested, payment.amount_refunded) + amount
    try:
        refund = stripe_client().v1.refunds.create(
            params={"payment_intent": payment.payment_intent_id, "amount": to_minor_units(amount),
                    "metadata": {"organization_id": payment.organization.public_id}},
            options={"idempotency_key": f"refund:{payment.payment_intent_id}:{to_minor_units(requested)}"},
        )
    except stripe.StripeError as exc:
        raise DomainError(
            f"Stripe refused the refund: {exc.user_message or exc}", code="stripe_refused", field="amount"
        ) from None
    payment.refund_requested = requested
    payment.save(update_fields=["refund_requested"])
    audit_record(
        actor=actor, organization=payment.organization, action="card_payment.refund", target=payment,
        after={"amount": str(amount), "refund": refund.id, "payment_intent": payment.payment_intent_id},
    )
    return refund.id
