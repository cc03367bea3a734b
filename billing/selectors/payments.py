"""Reads for the card payment parts of the Billing page."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db.models import F, Sum
from django.utils import timezone

from orgs.models import Organization

from ..models import CardPayment, PaymentProfile, PaymentStatus
from ..stripe_client import stripe_configured


def payments_summary(*, organization: Organization) -> dict[str, Any]:
    """Whether card payments are on, the payment profile, and payments still waiting for Stripe."""
    if not stripe_configured():
        return {"payments_enabled": False}
    return {
        "payments_enabled": True,
        "payment_profile": PaymentProfile.objects.filter(organization=organization).first(),
        "pending_payments": list(
            CardPayment.objects.filter(
                organization=organization, status__in=[PaymentStatus.CREATING, PaymentStatus.PROCESSING],
                created_at__gte=timezone.now() - timedelta(days=1),
            )[:5]
        ),
    }


def payment_profile_for(*, organization_id: int) -> PaymentProfile:
    """The organization's card and auto-recharge settings for a page: an unsaved default row when
    it never saved any (reading a page creates nothing)."""
    profile = PaymentProfile.objects.filter(organization_id=organization_id).first()
    return profile or PaymentProfile(organization_id=organization_id)


def pending_refunds(*, organization_id: int) -> Decimal:
    """Refunds staff asked Stripe for whose `charge.refunded` has not been posted yet: money that
    will leave the balance, summed over the organization's card payments."""
    total = CardPayment.objects.filter(
        organization_id=organization_id, refund_requested__gt=F("amount_refunded")
    ).aggregate(total=Sum(F("refund_requested") - F("amount_refunded")))["total"]
    return total or Decimal(0)
