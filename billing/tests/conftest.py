from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import pytest
from django.test import Client
from django.test.client import Client as DjangoClient
from django.test.client import ClientHandler

from console.handlers import load_gateway_middleware

GATEWAY_TOKEN = "test-gateway-token"


class Gateway:
    """Talks to the gateway API the way a gateway does: headers and JSON, no session."""

    def __init__(self, client: DjangoClient) -> None:
        self.client = client

    def authorize(
        self, raw_key: str | None, *, estimate: int | str | None = None, token: str | None = GATEWAY_TOKEN,
        method: str = "get",
    ) -> Any:
        headers: dict[str, str] = {}
        if raw_key is not None:
            headers["Authorization"] = f"Bearer {raw_key}"
        if token is not None:
            headers["X-Gateway-Token"] = token
        if estimate is not None:
            headers["X-Estimated-Tokens"] = str(estimate)
        return getattr(self.client, method)("/api/v1/gateway/authorize", headers=headers)

    def usage(self, events: Sequence[dict[str, Any]] | None = None, *, body: bytes | str | None = None,
              token: str | None = GATEWAY_TOKEN) -> Any:
        headers = {"X-Gateway-Token": token} if token is not None else {}
        data = body if body is not None else json.dumps({"events": list(events or [])})
        return self.client.post("/api/v1/gateway/usage", data=data, content_type="application/json",
                                headers=headers)


def within_one_minute(seconds: float) -> None:
    """Wait for the next minute unless `seconds` are left in this one: the rate windows slide, so a
    test that counts exactly must not straddle a minute's end."""
    left = 60 - time.time() % 60
    if left < seconds:
        time.sleep(left + 0.05)


@pytest.fixture
def gateway() -> Gateway:
    """On the gateway's own middleware stack, as console.wsgi serves it (not the pages' stack)."""
    within_one_minute(3)
    client = Client()
    client.handler = GatewayClientHandler(enforce_csrf_checks=True)
    return Gateway(client)


class GatewayClientHandler(ClientHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        load_gateway_middleware(self)
