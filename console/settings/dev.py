"""Local development (`make run`): debug on, the embedded defaults from base."""

from __future__ import annotations

from .base import *  # noqa: F403
from .base import env

DEBUG = True
ALLOWED_HOSTS = ["*"]
# The demo gateway token that the README's curl examples use; never a default outside dev.
CONSOLE_GATEWAY_TOKENS = env.list("CONSOLE_GATEWAY_TOKENS", default=["demo-gateway-token"])
