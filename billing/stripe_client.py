"""The one place the Stripe library is configured: a client on STRIPE_API_BASE, or None when
card payments are not configured (then the pages say what they said before payments existed)."""

from __future__ import annotations

from decimal import Decimal

import stripe
from django.conf import settings

from .money import CENT


def stripe_configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY and settings.STRIPE_PUBLISHABLE_KEY and settings.STRIPE_WEBHOOK_SECRET)


def stripe_client() -> stripe.StripeClient:
    """A client on the configured API base; network retries use Stripe's idempotency keys."""
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses={"api": settings.STRIPE_API_BASE},
        max_network_retries=2,
    )


def to_minor_units(amount: Decimal) -> int:
    """Cents for the API (amounts here have at most 2 decimal places, checked by the services)."""
    return int((amount * 100).to_integral_value())


def from_minor_units(value: int) -> Decimal:
    return (Decimal(value) / 100).quantize(CENT)


def stripe_csp_sources() -> dict[str, list[str]]:
    """What a page with the card form adds to its Content-Security-Policy: Stripe.js is the one
    script from another origin. Stripe's own: the script and its frames from js.stripe.com, 3-D
    Secure frames from hooks.stripe.com, calls to api.stripe.com; a stand-in such as localstripe
    (STRIPE_API_BASE): its own origin for all three."""
    base = settings.STRIPE_API_BASE.rstrip("/")
    if base == "https://api.stripe.com":
        return {
            "script-src": ["https://js.stripe.com"],
            "frame-src": ["https://js.stripe.com", "https://hooks.stripe.com"],
            "connect-src": ["https://api.stripe.com"],
        }
    return {"script-src": [base], "frame-src": [base], "connect-src": [base]}
