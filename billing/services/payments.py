"""Card top-ups on Stripe: the PaymentIntent and the webhooks that credit it or mark it failed.
(Refunds: `refunds.py`; receipts: `receipts.py`.)

The balance is credited only by a verified `payment_intent.succeeded` webhook, never by the
browser's return: one ledger top-up per PaymentIntent (reference `stripe:<PaymentIntent id>`), so
a re-delivered or reordered webhook credits once. Every Stripe call that creates something carries
an idempotency key, so the library's network retries never create twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import stripe
import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from console.errors import DomainError
from console.models import User
from orgs.audit import audit_record
from orgs.models import Organization
from orgs.permissions import require_org_admin

from ..models import (
    CardPayment,
    LedgerKind,
    PaymentKind,
    PaymentProfile,
    PaymentStatus,
)
from ..money import money_amount_check, money_amount_parse
from ..selectors.payments import payment_profile_for
from ..stripe_client import stripe_client, to_minor_units
from .ledger import ledger_post
from .receipts import card_receipt_email_enqueue

logger = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PaymentSubmitResult:
    payment: CardPayment
    # Set when the card asks for 3-D Secure: the page hands it to Stripe.js (confirmCardPayment).
    action_client_secret: str = ""


def topup_amount_clean(value: Decimal | str) -> Decimal:
    """A card top-up's amount, typed (`billing.money.money_amount_parse`) or already a Decimal: at
    most 2 decimals, within CONSOLE_TOPUP_MIN..CONSOLE_TOPUP_MAX."""
    low, high = settings.CONSOLE_TOPUP_MIN, settings.CONSOLE_TOPUP_MAX
    if isinstance(value, Decimal):
        return money_amount_check(value, minimum=low, maximum=high)
    return money_amount_parse(value, minimum=low, maximum=high)


def payment_profile(organization_id: int) -> PaymentProfile:
    PaymentProfile.objects.bulk_create([PaymentProfile(organization_id=organization_id)], ignore_conflicts=True)
    return PaymentProfile.objects.get(organization_id=organization_id)


def stripe_customer_ensure(*, organization: Organization) -> str:
    """The organization's Stripe customer, created once (the idempotency key makes concurrent
    first payments create the same customer)."""
    profile = payment_profile(organization.pk)
    if profile.stripe_customer_id:
        return profile.stripe_customer_id
    customer = stripe_client().v1.customers.create(
        params={
            "name": organization.name,
            "email": organization.registered_email,
            "metadata": {"organization_id": organization.public_id},
        },
        options={"idempotency_key": f"customer:{organization.public_id}"},
    )
    PaymentProfile.objects.filter(pk=organization.pk, stripe_customer_id="").update(stripe_customer_id=customer.id)
    profile.refresh_from_db(fields=["stripe_customer_id"])
    return profile.stripe_customer_id


def card_setup_start(*, organization: Organization, actor: User, off_session: bool) -> tuple[str, str]:
    """A SetupIntent for the card form: (its id, its client secret). Stripe.js confirms it with
    the card the admin types; the card never reaches this server."""
    require_org_admin(actor, organization.pk)
    try:
        customer = stripe_customer_ensure(organization=organization)
    except stripe.StripeError as exc:
        logger.warning("stripe_unreachable", error=str(exc))
        raise DomainError("Card payments are unavailable right now. Try again in a few minutes.",
                          code="payments_unavailable") from None
    params: Any = {
        "customer": customer,
        "usage": "off_session" if off_session else "on_session",
        "payment_method_types": ["card"],
        "metadata": {"organization_id": organization.public_id},
    }
    try:
        intent = stripe_client().v1.setup_intents.create(params=params)
    except stripe.StripeError as exc:
        logger.warning("stripe_unreachable", error=str(exc))
        raise DomainError("Card payments are unavailable right now. Try again in a few minutes.",
                          code="payments_unavailable") from None
    return intent.id, intent.client_secret or ""


@dataclass(frozen=True)
class SetupCard:
    payment_method_id: str
    brand: str
    last4: str
    exp: str


def card_from_setup(*, organization: Organization, setup_intent_id: str) -> SetupCard:
    """The card of a confirmed SetupIntent, checked to belong to this organization's customer."""
    profile = payment_profile_for(organization_id=organization.pk)  # a refusal must create nothing
    if not setup_intent_id.startswith("seti_") or not profile.stripe_customer_id:
        raise DomainError("This card form has expired. Reload the page and enter the card again.", code="setup_expired")
    client = stripe_client()
    try:
        intent = client.v1.setup_intents.retrieve(setup_intent_id)
    except stripe.InvalidRequestError:
        raise DomainError(
            "This card form has expired. Reload the page and enter the card again.", code="setup_expired"
        ) from None
    except stripe.StripeError:
        raise DomainError("Card payments are unavailable right now. Nothing was charged; try again later.",
                          code="payments_unavailable") from None
    if intent.customer != profile.stripe_customer_id or intent.status != "succeeded" or not intent.payment_method:
        raise DomainError("The card was not confirmed. Enter it again.", code="card_not_confirmed")
    method_id = intent.payment_method if isinstance(intent.payment_method, str) else intent.payment_method.id
    try:
        method = client.v1.payment_methods.retrieve(method_id)
    except stripe.StripeError:
        raise DomainError("Card payments are unavailable right now. Nothing was charged; try again later.",
                          code="payments_unavailable") from None
    card = method.card
    return SetupCard(
        payment_method_id=method_id,
        brand=str(card.brand) if card else "card",
        last4=str(card.last4) if card else "",
        exp=f"{card.exp_month:02d}/{card.exp_year}" if card else "",
    )


def card_topup_pay(
    *, organization: Organization, actor: User, amount: Decimal, setup_intent_id: str
) -> PaymentSubmitResult:
    """Charge the card the admin just confirmed: one PaymentIntent per SetupIntent, confirmed here.
    The form posted again (replayed, double-clicked, concurrently) answers with the payment the
    SetupIntent already started. Nothing is credited now; the webhook does that."""
    require_org_admin(actor, organization.pk)
    amount = topup_amount_clean(amount)
    payment = CardPayment.objects.filter(
        organization=organization, kind=PaymentKind.MANUAL, setup_intent_id=setup_intent_id
    ).exclude(setup_intent_id="").first()
    if payment is not None and (payment.status != PaymentStatus.CREATING or payment.payment_intent_id):
        return PaymentSubmitResult(payment=payment)
    card = card_from_setup(organization=organization, setup_intent_id=setup_intent_id)
    if payment is None:
        payment = _topup_create(organization=organization, actor=actor, amount=amount, card=card,
                                setup_intent_id=setup_intent_id)
    return payment_intent_submit(
        payment_id=payment.pk, payment_method_id=card.payment_method_id, off_session=False,
        # From the SetupIntent, like the row: a retry of a submission that lost Stripe's answer
        # gets the same PaymentIntent back.
        idempotency_key=f"topup:{organization.public_id}:{setup_intent_id}",
    )


def _topup_create(
    *, organization: Organization, actor: User, amount: Decimal, card: SetupCard, setup_intent_id: str
) -> CardPayment:
    """The SetupIntent's top-up row (audited): created once, or the one a concurrent post created."""
    try:
        with transaction.atomic():
            payment = CardPayment.objects.create(
                organization=organization, kind=PaymentKind.MANUAL, amount=amount,
                currency=settings.CONSOLE_CURRENCY, card_brand=card.brand, card_last4=card.last4, created_by=actor,
                setup_intent_id=setup_intent_id,
            )
            audit_record(
                actor=actor, organization=organization, action="card_payment.start", target=payment,
                after={"amount": str(amount), "card": payment.card_label},
            )
    except IntegrityError:  # cardpayment_one_per_setup_intent: the other post won
        return CardPayment.objects.get(organization=organization, setup_intent_id=setup_intent_id)
    return payment


def payment_intent_submit(
    *, payment_id: int, payment_method_id: str, off_session: bool, idempotency_key: str
) -> PaymentSubmitResult:
    """Create and confirm the payment's PaymentIntent, once.

    The network call runs under the payment row's lock (only that row: no balance or account is
    held), so two submitters of one payment never both call Stripe; the idempotency key covers a
    crash between Stripe's answer and our commit (a retry gets the same PaymentIntent back).
    """
    failed = False
    action_secret = ""  # nosec B105 -- empty until Stripe answers, not a password
    with transaction.atomic():
        payment = (
            CardPayment.objects.select_for_update(skip_locked=True)
            .select_related("organization")
            .filter(pk=payment_id, status=PaymentStatus.CREATING, payment_intent_id="")
            .first()
        )
        if payment is None:  # submitted meanwhile (or being submitted right now)
            return PaymentSubmitResult(payment=CardPayment.objects.get(pk=payment_id))
        organization = payment.organization
        params: Any = {
            "amount": to_minor_units(payment.amount),
            "currency": payment.currency.lower(),
            "customer": payment_profile(organization.pk).stripe_customer_id,
            "payment_method": payment_method_id,
            "payment_method_types": ["card"],
            "confirm": True,
            "metadata": {"organization_id": organization.public_id, "console_payment_id": str(payment.pk),
                         "kind": payment.kind},
        }
        if off_session:
            params["off_session"] = True
        try:
            intent = stripe_client().v1.payment_intents.create(
                params=params, options={"idempotency_key": idempotency_key}
            )
        except stripe.CardError as exc:
            failed = True
            payment.failure_message = (exc.user_message or "Your card was declined.")[:300]
            error_intent = getattr(exc.error, "payment_intent", None) if exc.error else None
            payment.payment_intent_id = getattr(error_intent, "id", "") or ""
        except stripe.StripeError as exc:
            failed = True
            logger.warning("stripe_payment_intent_error", payment_id=payment.pk, error=str(exc))
            payment.failure_message = "The payment could not be started. Nothing was charged; try again later."
        else:
            payment.payment_intent_id = intent.id
            if intent.status in ("requires_payment_method", "canceled"):
                failed = True
                error = intent.last_payment_error
                payment.failure_message = ((error.message if error else "") or "Your card was declined.")[:300]
            elif intent.status == "requires_action":
                action_secret = intent.client_secret or ""
        payment.status = PaymentStatus.FAILED if failed else PaymentStatus.PROCESSING
        payment.save(update_fields=["status", "payment_intent_id", "failure_message"])
    if failed:
        payment_failure_record(payment_id=payment.pk)
    payment.refresh_from_db()
    return PaymentSubmitResult(payment=payment, action_client_secret=action_secret)


def payment_failure_record(*, payment_id: int) -> None:
    """After a payment failed: automatic ones count towards turning auto-recharge off."""
    from .auto_recharge import auto_recharge_failure_record  # auto_recharge imports this module

    payment = CardPayment.objects.get(pk=payment_id)
    if payment.kind == PaymentKind.AUTO:
        auto_recharge_failure_record(payment=payment)


# --- webhooks --------------------------------------------------------------------------------------


def _payment_for_intent(intent: dict[str, Any]) -> CardPayment | None:
    """Our row for a PaymentIntent (locked): by its id, or, when the create call never answered,
    by the payment id we put in its metadata."""
    rows = CardPayment.objects.select_for_update().select_related("organization")
    payment = rows.filter(payment_intent_id=intent.get("id", "")).first()
    metadata = intent.get("metadata") or {}
    if payment is None and str(metadata.get("console_payment_id", "")).isdigit():
        payment = rows.filter(
            pk=int(metadata["console_payment_id"]), payment_intent_id__in=["", intent.get("id")]
        ).first()
    if payment is not None and metadata.get("organization_id") != payment.organization.public_id:
        logger.warning("stripe_webhook_org_mismatch", payment_intent=intent.get("id"), payment_id=payment.pk)
        return None
    return payment


def stripe_object_id(value: object) -> str:
    """The id of an expandable field: the object's `id`, or the field itself when it is the id."""
    if isinstance(value, dict):
        return str(value.get("id", ""))
    return str(value or "")


def card_payment_credit(payment: CardPayment, *, intent_id: str, charge_id: str) -> str:
    """Post the payment's top-up (once) and queue its receipt; the caller holds the payment row's lock."""
    if payment.status == PaymentStatus.SUCCEEDED:
        return "duplicate"
    organization = payment.organization
    result = ledger_post(
        organization=organization, kind=LedgerKind.TOPUP, amount=payment.amount,
        reference=f"stripe:{intent_id}", actor=payment.created_by,
        memo=f"{payment.get_kind_display()} · {payment.card_label}",
    )
    payment.status = PaymentStatus.SUCCEEDED
    payment.payment_intent_id = intent_id
    payment.charge_id = charge_id or payment.charge_id
    payment.ledger_entry = result.entry
    payment.succeeded_at = timezone.now()
    payment.failure_message = ""
    payment.save()
    if payment.kind == PaymentKind.AUTO:
        PaymentProfile.objects.filter(pk=organization.pk).update(consecutive_failures=0)
    audit_record(
        actor=payment.created_by, organization=organization, action="card_payment.succeeded", target=payment,
        after={"amount": str(payment.amount), "payment_intent": intent_id, "card": payment.card_label,
               "kind": payment.kind},
    )
    card_receipt_email_enqueue(payment=payment)
    return "credited"


@transaction.atomic
def payment_intent_succeeded(*, intent: dict[str, Any]) -> str:
    payment = _payment_for_intent(intent)
    if payment is None:
        logger.warning("stripe_webhook_unknown_payment", payment_intent=intent.get("id"))
        return "unknown"
    same_currency = str(intent.get("currency", "")).upper() == payment.currency.upper()
    if intent.get("amount") != to_minor_units(payment.amount) or not same_currency:
        logger.error("stripe_webhook_amount_mismatch", payment_intent=intent.get("id"), payment_id=payment.pk)
        return "amount_mismatch"
    charge_id = stripe_object_id(intent.get("latest_charge"))
    return card_payment_credit(payment, intent_id=str(intent["id"]), charge_id=charge_id)


def payment_intent_failed(*, intent: dict[str, Any]) -> str:
    with transaction.atomic():
        payment = _payment_for_intent(intent)
        if payment is None:
            logger.warning("stripe_webhook_unknown_payment", payment_intent=intent.get("id"))
            return "unknown"
        # A late failure event never undoes a success, and a failure is counted once.
        if payment.status not in (PaymentStatus.CREATING, PaymentStatus.PROCESSING):
            return "duplicate"
        error = intent.get("last_payment_error") or {}
        payment.status = PaymentStatus.FAILED
        payment.payment_intent_id = str(intent["id"])
        payment.failure_message = str(error.get("message") or "Your card was declined.")[:300]
        payment.save(update_fields=["status", "payment_intent_id", "failure_message"])
    payment_failure_record(payment_id=payment.pk)
    return "failed"
