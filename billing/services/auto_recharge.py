"""Auto-recharge: a saved card is charged off-session when the balance drops below a threshold.

Checked where balance alerts are (after every ledger posting and ingest batch commits, and every
minute by beat). One charge per crossing, whatever runs concurrently: the crossing is claimed by a
conditional UPDATE (armed → fired, `crossings + 1`) under the billing account's lock, the payment
row is unique per (organization, crossing), and Stripe's idempotency key is derived from the
crossing. A declined charge emails the admins and re-arms, so the next check tries again; after
CONSOLE_AUTO_RECHARGE_MAX_FAILURES declines in a row auto-recharge turns itself off.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import stripe
import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from console.errors import DomainError
from console.models import User
from console.services import absolute_url, email_enqueue
from orgs.audit import audit_record
from orgs.models import Membership, Organization
from orgs.permissions import require_org_admin

from ..models import BillingAccount, CardPayment, PaymentKind, PaymentProfile, PaymentStatus, RechargeState
from ..money import format_money, money_amount_check
from ..timeutils import today_utc
from .alerts import schedule_balance_alert_check
from .payments import (
    card_from_setup,
    payment_intent_submit,
    payment_profile,
    topup_amount_clean,
)

logger = structlog.get_logger(__name__)

# A payment row older than this without a PaymentIntent lost its submitter: beat submits it again
# (same idempotency key, so Stripe answers with the first PaymentIntent if there was one).
STUCK_AFTER = timedelta(seconds=60)
MANUAL_ABANDONED_AFTER = timedelta(minutes=10)


def _card_fields(profile: PaymentProfile) -> dict[str, str]:
    return {"card": f"{profile.card_brand} •••• {profile.card_last4}" if profile.card_last4 else ""}


def auto_recharge_card_save(*, organization: Organization, actor: User, setup_intent_id: str) -> PaymentProfile:
    """Save the card of a confirmed SetupIntent as the one auto-recharge charges (audited). The
    SetupIntent is read from Stripe first, outside the transaction: no row is locked during the call."""
    require_org_admin(actor, organization.pk)
    card = card_from_setup(organization=organization, setup_intent_id=setup_intent_id)
    with transaction.atomic():
        profile = PaymentProfile.objects.select_for_update().get(pk=payment_profile(organization.pk).pk)
        before = _card_fields(profile)
        profile.card_payment_method_id = card.payment_method_id
        profile.card_brand, profile.card_last4, profile.card_exp = card.brand, card.last4, card.exp
        profile.save()
        audit_record(actor=actor, organization=organization, action="auto_recharge.card_saved", target=profile,
                     before=before, after=_card_fields(profile))
    return profile


@transaction.atomic
def auto_recharge_card_remove(*, organization: Organization, actor: User) -> PaymentProfile:
    """Forget the saved card, which turns auto-recharge off; the card is detached at Stripe after commit."""
    require_org_admin(actor, organization.pk)
    profile = PaymentProfile.objects.select_for_update().get(pk=payment_profile(organization.pk).pk)
    method_id, before = profile.card_payment_method_id, _card_fields(profile)
    if not method_id:
        return profile
    profile.card_payment_method_id = profile.card_brand = profile.card_last4 = profile.card_exp = ""
    profile.auto_recharge_enabled = False
    profile.save()
    audit_record(actor=actor, organization=organization, action="auto_recharge.card_removed", target=profile,
                 before={**before, "enabled": True}, after={"card": "", "enabled": False})

    def detach() -> None:
        try:
            from ..stripe_client import stripe_client

            stripe_client().v1.payment_methods.detach(method_id)
        except stripe.StripeError as exc:  # the card is forgotten here either way
            logger.warning("stripe_detach_failed", error=str(exc))

    transaction.on_commit(detach)
    return profile


@transaction.atomic
def auto_recharge_update(
    *, organization: Organization, actor: User, enabled: bool, threshold: Decimal, amount: Decimal
) -> PaymentProfile:
    """Change the settings (audited). Turning it on needs a saved card and clears the failure count;
    the balance is checked after commit, so a threshold above the balance charges at once."""
    require_org_admin(actor, organization.pk)
    errors: dict[str, str] = {}
    try:
        money_amount_check(threshold, minimum=Decimal(0), maximum=settings.CONSOLE_TOPUP_MAX, field="threshold")
    except DomainError as exc:
        errors["threshold"] = exc.message
    try:
        amount = topup_amount_clean(amount)
    except DomainError as exc:
        errors["amount"] = exc.message
    profile = PaymentProfile.objects.select_for_update().get(pk=payment_profile(organization.pk).pk)
    if enabled and not profile.has_card:
        errors["enabled"] = "Save a card first: auto-recharge charges the saved card."
    if errors:
        raise DomainError(code="invalid_auto_recharge", field_errors=errors)
    before = {"enabled": profile.auto_recharge_enabled, "threshold": str(profile.auto_recharge_threshold),
              "amount": str(profile.auto_recharge_amount)}
    if enabled and not profile.auto_recharge_enabled:
        profile.consecutive_failures = 0
        profile.disabled_reason = ""
    profile.auto_recharge_enabled = enabled
    profile.auto_recharge_threshold = threshold
    profile.auto_recharge_amount = amount
    profile.save()
    after = {"enabled": enabled, "threshold": str(threshold), "amount": str(amount)}
    if after != before:
        audit_record(actor=actor, organization=organization, action="auto_recharge.update", target=profile,
                     before=before, after=after)
    schedule_balance_alert_check(organization_id=organization.pk)
    return profile


def charged_today(*, organization_id: int) -> Decimal:
    """Automatic charges today (UTC) that are not failed: what the daily cap counts."""
    total = CardPayment.objects.filter(
        organization_id=organization_id, kind=PaymentKind.AUTO, created_at__date=today_utc(),
    ).exclude(status=PaymentStatus.FAILED).aggregate(total=Sum("amount"))["total"]
    return total or Decimal(0)


def _claim_crossing(organization_id: int) -> tuple[str, CardPayment | None]:
    """Decide, under the billing account's lock, whether this check charges; at most one does per crossing."""
    with transaction.atomic():
        account = BillingAccount.objects.select_for_update().filter(organization_id=organization_id).first()
        profile = PaymentProfile.objects.select_for_update().filter(organization_id=organization_id).first()
        if account is None or profile is None:
            return "", None
        rows = PaymentProfile.objects.filter(pk=profile.pk)
        if account.balance >= profile.auto_recharge_threshold:
            if profile.state == RechargeState.FIRED and rows.filter(state=RechargeState.FIRED).update(
                state=RechargeState.ARMED
            ):
                return "rearmed", None
            return "", None
        if not profile.auto_recharge_enabled or not profile.has_card or profile.state != RechargeState.ARMED:
            return "", None
        amount = profile.auto_recharge_amount
        if charged_today(organization_id=organization_id) + amount > settings.CONSOLE_AUTO_RECHARGE_DAILY_CAP:
            logger.warning("auto_recharge_daily_cap", organization_id=organization_id)
            return "capped", None
        # The conditional update is the decision: of concurrent checks, only one changes the row.
        if not rows.filter(state=RechargeState.ARMED).update(state=RechargeState.FIRED, crossings=F("crossings") + 1):
            return "", None
        profile.refresh_from_db(fields=["crossings"])
        payment = CardPayment.objects.create(
            organization_id=organization_id, kind=PaymentKind.AUTO, amount=amount, currency=settings.CONSOLE_CURRENCY,
            crossing=profile.crossings, card_brand=profile.card_brand, card_last4=profile.card_last4,
        )
        audit_record(
            actor=None, organization=Organization.objects.get(pk=organization_id), action="auto_recharge.charge",
            target=payment, after={"amount": str(amount), "crossing": profile.crossings,
                                   "balance": str(account.balance), "card": payment.card_label},
        )
        return "charging", payment


def _submit(payment: CardPayment) -> str:
    profile = PaymentProfile.objects.get(pk=payment.organization_id)
    organization = Organization.objects.only("public_id").get(pk=payment.organization_id)
    result = payment_intent_submit(
        payment_id=payment.pk, payment_method_id=profile.card_payment_method_id, off_session=True,
        idempotency_key=f"auto-recharge:{organization.public_id}:{payment.crossing}",
    )
    return "declined" if result.payment.status == PaymentStatus.FAILED else "charged"


def auto_recharge_check(*, organization_id: int) -> str:
    """Charge the saved card once for this crossing below the threshold; re-arm above it.
    Returns "charged", "declined", "rearmed", "capped" or ""."""
    outcome, payment = _claim_crossing(organization_id)
    if payment is None:
        return outcome
    # After commit, outside the account's lock: the Stripe call is slow.
    return _submit(payment)


def auto_recharge_failure_record(*, payment: CardPayment) -> None:
    """A declined automatic charge: email the admins, re-arm for the next check, and turn
    auto-recharge off after the configured number of declines in a row."""
    limit = settings.CONSOLE_AUTO_RECHARGE_MAX_FAILURES
    with transaction.atomic():
        profile = PaymentProfile.objects.select_for_update().get(pk=payment.organization_id)
        profile.consecutive_failures += 1
        turned_off = profile.auto_recharge_enabled and profile.consecutive_failures >= limit
        if turned_off:
            profile.auto_recharge_enabled = False
            profile.disabled_reason = (
                f"Auto-recharge was turned off after {profile.consecutive_failures} declined charges in a row "
                f"(last: {payment.failure_message or 'declined'}). Check the card and turn it on again."
            )
        profile.state = RechargeState.ARMED
        profile.save(update_fields=["consecutive_failures", "auto_recharge_enabled", "disabled_reason", "state",
                                    "updated_at"])
        organization = Organization.objects.get(pk=payment.organization_id)
        audit_record(
            actor=None, organization=organization, action="auto_recharge.declined", target=payment,
            after={"failures": profile.consecutive_failures, "turned_off": turned_off,
                   "message": payment.failure_message},
        )
        admins = list(
            Membership.objects.admins().filter(organization=organization)
            .order_by("user__email").values_list("user__email", flat=True)
        )
        email_enqueue(
            to=admins or [organization.registered_email],
            template="auto_recharge_failed",
            context={
                "org_name": organization.name,
                "org_id": organization.public_id,
                "amount": format_money(payment.amount),
                "card": payment.card_label,
                "message": payment.failure_message,
                "failures": profile.consecutive_failures,
                "turned_off": turned_off,
                "settings_url": absolute_url("billing:auto_recharge", org_id=organization.public_id),
            },
            unique_key=f"auto_recharge_failed:{organization.public_id}:{payment.pk}",
            organization_ref=organization.public_id,
        )
    logger.warning("auto_recharge_declined", organization_id=organization.pk, failures=profile.consecutive_failures,
                   turned_off=turned_off)


def auto_recharges_check() -> int:
    """The beat job: check every organization whose auto-recharge state disagrees with its balance,
    and submit automatic payments whose submitter was lost. Returns how many acted."""
    balance = F("organization__billing_account__balance")
    due = PaymentProfile.objects.filter(organization__billing_account__isnull=False).filter(
        Q(state=RechargeState.ARMED, auto_recharge_enabled=True, auto_recharge_threshold__gt=balance)
        & ~Q(card_payment_method_id="")
        | Q(state=RechargeState.FIRED, auto_recharge_threshold__lte=balance)
    )
    acted = 0
    for organization_id in due.values_list("organization_id", flat=True).order_by("organization_id"):
        acted += bool(auto_recharge_check(organization_id=organization_id))
    stuck = CardPayment.objects.filter(
        kind=PaymentKind.AUTO, status=PaymentStatus.CREATING, payment_intent_id="",
        created_at__lt=timezone.now() - STUCK_AFTER,
    )
    for payment in stuck.order_by("id"):
        acted += bool(_submit(payment))
    # A card top-up whose page died during the create call: no one resubmits it (the admin may pay
    # again), so its page stops saying "Processing…". Should Stripe have taken it after all, its
    # webhook still credits it (a success always wins).
    acted += CardPayment.objects.filter(
        kind=PaymentKind.MANUAL, status=PaymentStatus.CREATING, payment_intent_id="",
        created_at__lt=timezone.now() - MANUAL_ABANDONED_AFTER,
    ).update(status=PaymentStatus.FAILED, failure_message="The payment could not be started. Nothing was charged.")
    return acted
