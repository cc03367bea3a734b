"""`POST /stripe/webhook`: Stripe's events, signature verified with the library.

Answers: 400 for a bad or missing signature (nothing is done), 200 for everything verified — an
event type we do not handle, a repeated or reordered event, an unknown organization or
PaymentIntent (logged) — so Stripe does not retry what can never succeed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import stripe
import structlog
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .services.payments import payment_intent_failed, payment_intent_succeeded
from .services.refunds import charge_refunded
from .stripe_client import stripe_configured

logger = structlog.get_logger(__name__)

HANDLERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "payment_intent.succeeded": lambda obj: payment_intent_succeeded(intent=obj),
    "payment_intent.payment_failed": lambda obj: payment_intent_failed(intent=obj),
    "charge.refunded": lambda obj: charge_refunded(charge=obj),
}


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


@csrf_exempt  # authenticated by Stripe's signature instead
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    if not stripe_configured():
        return _error(404, "payments_not_configured", "Card payments are not configured.")
    payload = request.body
    try:
        stripe.WebhookSignature.verify_header(
            payload.decode("utf-8"), request.headers.get("Stripe-Signature"), settings.STRIPE_WEBHOOK_SECRET,
            stripe.Webhook.DEFAULT_TOLERANCE,
        )
        event = json.loads(payload)
        event_type, obj = str(event["type"]), event["data"]["object"]
        if not isinstance(obj, dict):
            raise ValueError("data.object is not an object")
    except (stripe.SignatureVerificationError, UnicodeDecodeError) as exc:
        logger.warning("stripe_webhook_bad_signature", error=str(exc))
        return _error(400, "invalid_signature", "The Stripe-Signature header does not verify.")
    except (ValueError, KeyError, TypeError) as exc:
        logger.warning("stripe_webhook_malformed", error=str(exc))
        return _error(400, "malformed_event", "The body is not a Stripe event.")
    handler = HANDLERS.get(event_type)
    outcome = handler(obj) if handler else "ignored"
    logger.info("stripe_webhook", event_id=event.get("id"), event_type=event_type, outcome=outcome)
    return JsonResponse({"received": True, "outcome": outcome})
