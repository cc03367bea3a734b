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
from django.db.models import F
from django.db.models.functions import Greatest

from console.errors import DomainError
from console.models import User
from orgs.audit import audit_record
from orgs.permissions import require_staff

from ..models import BillingAccount, CardPayment, LedgerKind, PaymentStatus
from ..money import CENT, format_money, money_amount_check
from ..selectors.payments import pending_refunds
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


def card_payment_refund(*, payment: CardPayment, amount: Decimal, actor: User) -> str:
    """Staff refund part or all of a card top-up at Stripe; the ledger's refund row follows with
    `charge.refunded`. At most what is left of the payment, and at most the balance less the refunds
    already asked of Stripe and not posted yet (the organization's pending refunds).

    The check and the reservation (`refund_requested`) commit first, under the payment's and the
    billing account's row locks, so concurrent refunds of the organization are decided one after
    the other; the Stripe call runs after, under no lock. Stripe refusing or unreachable releases
    the reservation. (A crash between the two leaves it reserved: the refundable amount is then
    understated, never overstated.)"""
    require_staff(actor, "billing.change_cardpayment")
    money_amount_check(amount, minimum=CENT, maximum=None)
    payment, requested = _refund_reserve(payment_id=payment.pk, amount=amount)
    try:
        refund = stripe_client().v1.refunds.create(
            params={"payment_intent": payment.payment_intent_id, "amount": to_minor_units(amount),
                    "metadata": {"organization_id": payment.organization.public_id}},
            # Derived from the requested total: a retry after a failure asks for the same total again.
            options={"idempotency_key": f"refund:{payment.payment_intent_id}:{to_minor_units(requested)}"},
        )
    except stripe.StripeError as exc:
        CardPayment.objects.filter(pk=payment.pk).update(
            refund_requested=Greatest(F("refund_requested") - amount, F("amount_refunded"))
        )
        raise DomainError(
            f"Stripe refused the refund: {exc.user_message or exc}", code="stripe_refused", field="amount"
        ) from None
    audit_record(
        actor=actor, organization=payment.organization, action="card_payment.refund", target=payment,
        after={"amount": str(amount), "refund": refund.id, "payment_intent": payment.payment_intent_id},
    )
    return refund.id


@transaction.atomic
def _refund_reserve(*, payment_id: int, amount: Decimal) -> tuple[CardPayment, Decimal]:
    """Check the refund and reserve it on the payment; returns the payment and its new requested total."""
    payment = CardPayment.objects.select_for_update().select_related("organization").get(pk=payment_id)
    if payment.status != PaymentStatus.SUCCEEDED:
        raise DomainError("Only a credited card payment can be refunded.", code="not_refundable", field="amount")
    if amount > payment.refundable:
        left = format_money(payment.refundable)
        raise DomainError(f"At most {left} of this payment is left to refund.", code="refund_too_large", field="amount")
    # The payment's row, then the billing account's: the order in which the webhooks take them. The
    # account's lock makes the refunds of one organization wait for each other's reservation, and
    # `charge.refunded` posts a refund and clears it from the pending ones in one transaction.
    account = BillingAccount.objects.select_for_update().get(organization_id=payment.organization_id)
    pending = pending_refunds(organization_id=payment.organization_id)
    if amount > account.balance - pending:
        balance = format_money(account.balance)
        message = (
            f"A refund cannot exceed the balance ({balance}) less the refunds Stripe has not confirmed yet "
            f"({format_money(pending)}): at most {format_money(max(account.balance - pending, Decimal(0)))}."
            if pending else f"A refund cannot exceed the balance ({balance})."
        )
        raise DomainError(message, code="refund_exceeds_balance", field="amount")
    requested = max(payment.refund_requested, payment.amount_refunded) + amount
    payment.refund_requested = requested
    payment.save(update_fields=["refund_requested"])
    return payment, requested
