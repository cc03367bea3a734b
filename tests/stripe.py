"""localstripe as a process for the payment tests, and Django pointed at it.

    def test_x(stripe_fake):      # settings.STRIPE_* point at a fresh, empty localstripe
        setup = stripe_fake.confirm_setup(seti_id, secret, card="4242424242424242")   # what Stripe.js does
        stripe_fake.deliver(client, "payment_intent.succeeded", pi_id)               # a signed webhook

Registered by tests/fixtures.py (`pytest_plugins`). The server (tests/localstripe_server.py) starts
once per session on a free loopback port; `stripe_fake` empties its store per test. localstripe
signs and POSTs webhooks itself only to a URL it can reach (the browser test's live server); the
other tests take the event localstripe recorded (`GET /v1/events`) and deliver it through the test
client, signed with the library's own helper (`stripe.WebhookSignature.generate_signature_header`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import stripe
from django.test import Client
from pytest_django.fixtures import Settings

WEBHOOK_SECRET = "whsec_test_console"
SECRET_KEY = "sk_test_console"
PUBLISHABLE_KEY = "pk_test_console"


@dataclass
class FakeStripe:
    base: str

    def reset(self) -> None:
        requests.delete(f"{self.base}/_config/data", timeout=5).raise_for_status()
        # localstripe cannot forget a webhook: point an earlier test's at a closed port instead.
        self.register_webhook("http://127.0.0.1:9/stripe/webhook")

    def client(self) -> stripe.StripeClient:
        return stripe.StripeClient(SECRET_KEY, base_addresses={"api": self.base})

    def confirm_setup(self, setup_intent_id: str, client_secret: str, *, card: str = "4242424242424242") -> Any:
        """What Stripe.js's confirmCardSetup does with a card typed into Elements (localstripe's stand-in)."""
        response = requests.post(
            f"{self.base}/v1/setup_intents/{setup_intent_id}/confirm",
            data=json.dumps({
                "key": PUBLISHABLE_KEY, "use_stripe_sdk": True, "client_secret": client_secret,
                "payment_method_data": {"type": "card", "card": {
                    "number": card, "exp_month": "12", "exp_year": "2030", "cvc": "123"}},
            }),
            timeout=5,
        )
        return response.json()

    def events(self, event_type: str) -> list[dict[str, Any]]:
        response = requests.get(f"{self.base}/v1/events", params={"type": event_type}, timeout=5,
                                headers={"Authorization": f"Bearer {SECRET_KEY}"})
        response.raise_for_status()
        return list(response.json()["data"])

    def event_for(self, event_type: str, object_id: str) -> dict[str, Any]:
        """The event localstripe recorded for this object (waits a moment: it records as it goes)."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for event in self.events(event_type):
                if event["data"]["object"]["id"] == object_id:
                    return event
            time.sleep(0.05)
        raise AssertionError(f"localstripe recorded no {event_type} for {object_id}")

    def register_webhook(self, url: str) -> None:
        requests.post(f"{self.base}/_config/webhooks/console", data={"url": url, "secret": WEBHOOK_SECRET},
                      timeout=5).raise_for_status()

    def payment_intents(self) -> list[Any]:
        return list(self.client().v1.payment_intents.list(params={"limit": 100}).data)


def signed_post(client: Client, payload: dict[str, Any] | str, *, secret: str = WEBHOOK_SECRET) -> Any:
    body = payload if isinstance(payload, str) else json.dumps(payload)
    header = stripe.WebhookSignature.generate_signature_header(body, secret)
    return client.post("/stripe/webhook", data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)


def make_event(event_type: str, obj: dict[str, Any], *, event_id: str = "evt_test") -> dict[str, Any]:
    return {"id": event_id, "object": "event", "type": event_type, "created": int(time.time()),
            "data": {"object": obj}}


@pytest.fixture(scope="session")
def localstripe_server() -> Iterator[FakeStripe]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.localstripe_server", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        if not line.startswith("PORT "):
            raise RuntimeError(f"localstripe did not start: {line!r}")
        base = f"http://127.0.0.1:{int(line.split()[1])}"
        deadline = time.monotonic() + 15
        while True:
            try:
                requests.get(f"{base}/js.stripe.com/v3/", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield FakeStripe(base=base)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def stripe_fake(localstripe_server: FakeStripe, settings: Settings) -> FakeStripe:
    """Card payments configured against a fresh, empty localstripe."""
    localstripe_server.reset()
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_PUBLISHABLE_KEY = PUBLISHABLE_KEY
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_BASE = localstripe_server.base
    settings.STRIPE_JS_URL = f"{localstripe_server.base}/js.stripe.com/v3/"
    return localstripe_server
