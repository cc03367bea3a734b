"""The WSGI application gunicorn serves (console.wsgi): the gateway API on its lean stack, pages on
the full one. Driven through WSGI itself, not the test client."""

from __future__ import annotations

import io
import json
import logging
import sys
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from billing.tests.factories import fund, make_api_key
from console.handlers import ConsoleApplication, GatewayHandler
from console.wsgi import application

pytestmark = pytest.mark.django_db(transaction=True)  # WSGI requests close their connection's transaction

TOKEN = "test-gateway-token"


def call(path: str, *, host: str = "testserver", **headers: str) -> tuple[int, dict[str, str], bytes]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "testserver",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": host, "REMOTE_ADDR": "10.0.0.7",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
    }
    environ.update({"HTTP_" + name.upper(): value for name, value in headers.items()})
    answer: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        answer["status"] = int(status.split()[0])
        answer["headers"] = dict(response_headers)

    body = b"".join(application(environ, start_response))
    return answer["status"], answer["headers"], body


def test_gunicorn_serves_the_console_application():
    assert isinstance(application, ConsoleApplication)
    assert isinstance(application.gateway, GatewayHandler)


def test_authorize_through_the_lean_stack_sets_no_cookie_and_is_never_cached():
    raw, key = make_api_key()
    fund(key.organization, "5.00")
    status, headers, body = call("/api/v1/gateway/authorize", AUTHORIZATION=f"Bearer {raw}", X_GATEWAY_TOKEN=TOKEN)
    assert status == 200
    assert json.loads(body)["key_id"] == key.public_id
    assert headers["X-Key-Id"] == key.public_id
    assert headers["Cache-Control"] == "no-store"
    assert headers["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware runs here too
    assert "Set-Cookie" not in headers and "Vary" not in headers  # no session, no CSRF cookie
    assert "X-Frame-Options" not in headers  # the pages' clickjacking middleware is not on this stack


def test_pages_keep_the_full_stack():
    status, headers, _body = call("/accounts/login/")
    assert status == 200
    assert "csrftoken=" in headers.get("Set-Cookie", "")
    assert headers["X-Frame-Options"] == "DENY"


def test_an_unknown_host_is_refused_on_the_gateway_too():
    status, _headers, _body = call("/api/v1/gateway/authorize", host="evil.example", X_GATEWAY_TOKEN=TOKEN)
    assert status == 400


def test_a_wrong_method_gets_a_json_405():
    status, headers, body = call("/api/v1/gateway/usage", X_GATEWAY_TOKEN=TOKEN)
    assert status == 405
    assert headers["Allow"] == "POST"
    assert json.loads(body)["error"]["code"] == "method_not_allowed"


def test_each_gateway_call_logs_one_line_with_the_request_id_and_the_denial(caplog):
    with caplog.at_level(logging.INFO, logger="console.gateway"):
        call("/api/v1/gateway/authorize", AUTHORIZATION="Bearer sk-nope", X_GATEWAY_TOKEN=TOKEN,
             X_REQUEST_ID="req-42")
    [record] = [r for r in caplog.records if r.name == "console.gateway"]
    event = record.msg
    assert event["event"] == "request_finished"
    assert event["code"] == 401 and event["error"] == "invalid_api_key"
    assert event["request_id"] == "req-42"
    assert event["request"] == "GET /api/v1/gateway/authorize"
    assert "sk-nope" not in json.dumps(event, default=str)  # the key is never logged


class HookedMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view, args, kwargs):
        return None


@override_settings(GATEWAY_MIDDLEWARE=[f"{__name__}.HookedMiddleware"])
def test_a_middleware_with_hooks_is_refused_rather_than_half_applied():
    with pytest.raises(ImproperlyConfigured, match="HookedMiddleware"):
        GatewayHandler().load_middleware()
