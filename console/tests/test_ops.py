from __future__ import annotations

import json
import logging

import pytest
from django.test import override_settings

from console.logging import SECRET_PATTERN, redact_secrets


def test_healthz(client):
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.mark.django_db
def test_readyz_ok_with_database_and_broker(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "broker": "ok", "rate_limiter": "ok"}


@pytest.mark.django_db
@override_settings(CELERY_BROKER_URL="redis://127.0.0.1:1/0")
def test_readyz_503_when_broker_unreachable(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("error")


def test_secrets_are_redacted_from_log_lines():
    event = redact_secrets(None, "info", {"event": "request_finished", "request": "GET /invite/inv_abcdefghijklmnop"})
    assert event["request"] == "GET /invite/inv_[redacted]"
    assert not SECRET_PATTERN.search(json.dumps(event))


@pytest.mark.django_db
def test_one_log_line_per_request_with_request_id(client, caplog):
    with caplog.at_level(logging.INFO):
        client.get("/healthz")
    lines = [r for r in caplog.records if r.name.startswith("django_structlog")]
    assert len(lines) == 1
    assert lines[0].msg["event"] == "request_finished"
    assert lines[0].msg["request_id"]
