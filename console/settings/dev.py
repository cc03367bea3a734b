"""Local development (`make run`): debug on, the embedded defaults from base."""

from __future__ import annotations

import os

# Card payments: without Stripe keys, `make run` uses the localstripe stand-in that it starts
# (deploy/Procfile.dev): a fake Stripe on this machine, test cards only, nothing leaves it.
if not os.environ.get("STRIPE_SECRET_KEY"):
    os.environ.update(
        STRIPE_SECRET_KEY="sk_test_localstripe",  # noqa: S106 (the stand-in's keys, for make run only)  # nosec B106
        STRIPE_PUBLISHABLE_KEY="pk_test_localstripe",
        STRIPE_WEBHOOK_SECRET="whsec_localstripe",  # noqa: S106
        STRIPE_API_BASE=f"http://127.0.0.1:{os.environ.get('STRIPE_PORT', '8420')}",
    )

from .base import *  # noqa: F403
from .base import env

DEBUG = True
ALLOWED_HOSTS = ["*"]
# The demo gateway token that the README's curl examples use; never a default outside dev.
CONSOLE_GATEWAY_TOKENS = env.list("CONSOLE_GATEWAY_TOKENS", default=["demo-gateway-token"])
