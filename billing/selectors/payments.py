"""Reads for the card payment parts of the Billing page."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

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
