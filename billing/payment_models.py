"""Card payments on Stripe: the organization's payment profile (Stripe customer, saved card,
auto-recharge) and one row per PaymentIntent (a card top-up, by hand or automatic).

Imported by `billing.models`, so these are models of the billing app.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from orgs.models import Organization


def _money(**kwargs: object) -> models.DecimalField[Decimal, Decimal]:
    return models.DecimalField(max_digits=18, decimal_places=6, **kwargs)  # type: ignore[arg-type]


class RechargeState(models.TextChoices):
    ARMED = "armed", "Armed"  # the balance is at or above the threshold (or was never below it)
    FIRED = "fired", "Charged for this crossing"


class PaymentProfile(models.Model):
    """Per organization: its Stripe customer, the card saved for auto-recharge, and auto-recharge.

    Auto-recharge is a state machine like the balance alert: armed → fired by one conditional
    UPDATE per crossing below the threshold (`crossings + 1` names the crossing), fired → armed when
    the balance is back at or above the threshold.
    """

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, primary_key=True, related_name="payment_profile"
    )
    stripe_customer_id = models.CharField(max_length=100, blank=True)
    card_payment_method_id = models.CharField(max_length=100, blank=True)
    card_brand = models.CharField(max_length=30, blank=True)
    card_last4 = models.CharField(max_length=4, blank=True)
    card_exp = models.CharField(max_length=7, blank=True)  # MM/YYYY
    auto_recharge_enabled = models.BooleanField(default=False)
    auto_recharge_threshold = _money(default=Decimal("10"))
    auto_recharge_amount = _money(default=Decimal("25"))
    state = models.CharField(max_length=8, choices=RechargeState.choices, default=RechargeState.ARMED)
    crossings = models.PositiveIntegerField(default=0)
    consecutive_failures = models.PositiveSmallIntegerField(default=0)
    # Why auto-recharge turned itself off (shown on the page until it is turned on again).
    disabled_reason = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Payment profile of {self.organization}"

    @property
    def has_card(self) -> bool:
        return bool(self.card_payment_method_id)


class PaymentStatus(models.TextChoices):
    CREATING = "creating", "Creating"  # our row exists, the PaymentIntent call has not answered yet
    PROCESSING = "processing", "Processing"  # Stripe has it; the balance waits for the webhook
    SUCCEEDED = "succeeded", "Succeeded"  # credited (by the verified webhook only)
    FAILED = "failed", "Failed"


class PaymentKind(models.TextChoices):
    MANUAL = "manual", "Card top-up"
    AUTO = "auto", "Auto-recharge"


class CardPayment(models.Model):
    """One PaymentIntent. Credited once: the ledger top-up's reference is `stripe:<PaymentIntent id>`."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="card_payments")
    kind = models.CharField(max_length=8, choices=PaymentKind.choices)
    status = models.CharField(max_length=12, choices=PaymentStatus.choices, default=PaymentStatus.CREATING)
    amount = _money()
    currency = models.CharField(max_length=3)
    payment_intent_id = models.CharField(max_length=100, blank=True)
    charge_id = models.CharField(max_length=100, blank=True)
    # A card top-up: the SetupIntent that confirmed its card (one payment per SetupIntent, enforced below).
    setup_intent_id = models.CharField(max_length=100, blank=True)
    # Auto-recharge: the crossing it pays for (one payment per crossing, enforced below).
    crossing = models.PositiveIntegerField(null=True, blank=True)
    card_brand = models.CharField(max_length=30, blank=True)
    card_last4 = models.CharField(max_length=4, blank=True)
    failure_message = models.CharField(max_length=300, blank=True)
    amount_refunded = _money(default=Decimal(0))  # refunds posted to the ledger so far
    refund_requested = _money(default=Decimal(0))  # refunds staff asked Stripe for
    ledger_entry = models.OneToOneField(
        "billing.LedgerEntry", null=True, blank=True, on_delete=models.PROTECT, related_name="card_payment"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    succeeded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["payment_intent_id"], condition=~Q(payment_intent_id=""), name="cardpayment_unique_pi"
            ),
            models.UniqueConstraint(
                fields=["organization", "crossing"], condition=Q(crossing__isnull=False),
                name="cardpayment_one_per_crossing",
            ),
            models.UniqueConstraint(
                fields=["setup_intent_id"], condition=~Q(setup_intent_id=""), name="cardpayment_one_per_setup_intent"
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="cardpayment_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount} {self.currency} ({self.payment_intent_id or 'pending'})"

    @property
    def card_label(self) -> str:
        return f"{self.card_brand.title()} •••• {self.card_last4}" if self.card_last4 else "Card"

    @property
    def refundable(self) -> Decimal:
        return self.amount - max(self.amount_refunded, self.refund_requested)
