"""For bench/authorize.py only: console.wsgi's application with a rate tier whose limits are never
reached (bench/unlimited_tier.py), plus the hello-world JSON view (/healthz) served on the gateway's
lean stack at /bench/hello-lean, so that authorize can also be compared with a hello-world that
skips the same middleware it skips. Not part of the product."""

from __future__ import annotations

from typing import Any

from unlimited_tier import never_reached_tiers

from console.wsgi import application as console_application

never_reached_tiers()

LEAN_HELLO = "/bench/hello-lean"


def application(environ: dict[str, Any], start_response: Any) -> Any:
    if environ.get("PATH_INFO") == LEAN_HELLO:
        return console_application.gateway({**environ, "PATH_INFO": "/healthz"}, start_response)
    return console_application(environ, start_response)
