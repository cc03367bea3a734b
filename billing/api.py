"""The gateway API (machine to machine, JSON): authorize a call, ingest usage, the OpenAPI document.

Contract: DESIGN.md "The gateway API" and `billing/openapi.py`. The gateway authenticates with a
shared token in `X-Gateway-Token`; `Authorization` carries the customer's API key.

Every error is JSON `{"error": {"code", "message"}}`. On authorize, the same body also travels in
the `X-Gateway-Error` header, because nginx's `auth_request` drops the body of the answer it gets
(the sample configuration in deploy/nginx/ returns that header as the client's body).

The database unreachable → 503 and nothing is authorized (fail closed); Redis unreachable → the
TPM limiter fails open (see billing/limiter.py).
"""

from __future__ import annotations

import functools
import hmac
import json
from collections.abc import Callable
from typing import Any

import structlog
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .openapi import openapi_document
from .services import MAX_EVENTS_PER_BATCH, gateway_authorize, usage_ingest

logger = structlog.get_logger(__name__)

MAX_ESTIMATED_TOKENS = 10**9


def _error(status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> JsonResponse:
    body = {"error": {"code": code, "message": message}}
    response = JsonResponse(body, status=status, headers=headers)
    response["X-Gateway-Error"] = json.dumps(body, separators=(",", ":"), ensure_ascii=True)
    response.gateway_error_code = code  # type: ignore[attr-defined]  # for the request log line
    return response


def _gateway_token_valid(token: str | None) -> bool:
    """Constant-time comparison with every configured token (a list, so tokens can be rotated)."""
    if not token:
        return False
    supplied = token.encode()
    valid = False
    for candidate in settings.CONSOLE_GATEWAY_TOKENS:
        # No early exit: the time taken does not tell which token (if any) matched.
        valid |= bool(candidate) and hmac.compare_digest(supplied, str(candidate).encode())
    return valid


View = Callable[[HttpRequest], HttpResponse]


def gateway_endpoint(*methods: str) -> Callable[[View], View]:
    """A gateway API view: only `methods` (else a JSON 405), the gateway token first, never cached,
    no CSRF (no cookies are involved), and a database that cannot be reached answers 503, never a
    guess. One wrapper instead of Django's four decorators: authorize is the hot path."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest) -> HttpResponse:
            response = _checked(view, methods, request)
            response["Cache-Control"] = "no-store"
            return response

        wrapper.csrf_exempt = True  # type: ignore[attr-defined]
        return wrapper

    return decorate


def _checked(view: View, methods: tuple[str, ...], request: HttpRequest) -> HttpResponse:
    if request.method not in methods:
        response = _error(405, "method_not_allowed", f"Use {' or '.join(methods)}.")
        response["Allow"] = ", ".join(methods)
        return response
    if not _gateway_token_valid(request.META.get("HTTP_X_GATEWAY_TOKEN")):
        return _error(401, "invalid_gateway_token", "The X-Gateway-Token header is missing or wrong.")
    try:
        return view(request)
    except (OperationalError, InterfaceError) as exc:
        logger.error("gateway_database_unavailable", error=exc.__class__.__name__)
        return _error(503, "service_unavailable", "The console cannot reach its database. Try again shortly.",
                      headers={"Retry-After": "1"})


def ascii_whole_number(text: str, *, maximum: int) -> int | None:
    """`text` as a whole number from 0 to `maximum` written in ASCII digits 0-9, else None.

    Not `str.isdigit()` or `int()` alone: they also take superscripts (`²`, on which `int()`
    raises), other scripts' digits (`٣`, fullwidth ones), signs, underscores and surrounding spaces.
    """
    if not text or len(text) > len(str(maximum)) + 3 or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if value <= maximum else None


def _bearer(header: str | None) -> str:
    if not header:
        return ""
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


@gateway_endpoint("GET", "POST")
def authorize(request: HttpRequest) -> HttpResponse:
    estimate_header = request.META.get("HTTP_X_ESTIMATED_TOKENS")
    if estimate_header is None:
        estimated = settings.CONSOLE_DEFAULT_ESTIMATED_TOKENS
    else:
        parsed = ascii_whole_number(estimate_header.strip(" \t"), maximum=MAX_ESTIMATED_TOKENS)
        if parsed is None:
            return _error(400, "invalid_estimated_tokens",
                          f"X-Estimated-Tokens must be a whole number from 0 to {MAX_ESTIMATED_TOKENS} "
                          "in ASCII digits.")
        estimated = parsed
    decision = gateway_authorize(raw_key=_bearer(request.META.get("HTTP_AUTHORIZATION")), estimated_tokens=estimated)
    headers: dict[str, str] = {}
    if decision.tpm is not None:
        headers["X-RateLimit-Limit-Tokens"] = str(decision.tpm.limit)
        headers["X-RateLimit-Remaining-Tokens"] = str(decision.tpm.remaining)
        if decision.tpm.retry_after:
            headers["Retry-After"] = str(decision.tpm.retry_after)
    if not decision.allowed:
        return _error(decision.status, decision.code, decision.message, headers=headers)
    key = decision.key
    assert key is not None  # noqa: S101 -- an allowed decision always carries its key
    ids = {
        "organization_id": key.organization_public_id,
        "project_id": key.project_public_id,
        "key_id": key.public_id,
    }
    headers.update({"X-Organization-Id": ids["organization_id"], "X-Project-Id": ids["project_id"],
                    "X-Key-Id": ids["key_id"]})
    return JsonResponse(ids, headers=headers)


def _read_body(request: HttpRequest, limit: int) -> bytes | None:
    """The body, or None when it is larger than `limit` (checked before reading it all)."""
    declared = ascii_whole_number(request.META.get("CONTENT_LENGTH") or "0", maximum=2**63) or 0
    if declared > limit:
        return None
    body = request.read(limit + 1)
    return None if len(body) > limit else body


@gateway_endpoint("POST")
def usage(request: HttpRequest) -> HttpResponse:
    limit: int = settings.CONSOLE_USAGE_MAX_BODY_BYTES
    body = _read_body(request, limit)
    if body is None:
        return _error(413, "payload_too_large", f"The body is larger than {limit:,} bytes; send smaller batches.")
    try:
        payload: Any = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return _error(400, "invalid_json", "The body is not valid JSON.")
    except RecursionError:  # nested deeper than the interpreter's recursion limit
        return _error(400, "invalid_json", "The body is nested too deeply.")
    events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(events, list):
        return _error(400, "invalid_body", 'The body must be a JSON object with an "events" array.')
    if len(events) > MAX_EVENTS_PER_BATCH:
        return _error(400, "too_many_events", f"Send at most {MAX_EVENTS_PER_BATCH} events per request.")
    try:
        result = usage_ingest(events=events)
    except ValidationError as exc:
        return _error(400, "invalid_body", " ".join(exc.messages))
    return JsonResponse(
        {
            "accepted": result.accepted,
            "duplicates": result.duplicates,
            "rejected": [{"index": r.index, "id": r.id, "error": r.error} for r in result.rejected],
        }
    )


@never_cache
@require_GET
def openapi(request: HttpRequest) -> JsonResponse:
    return JsonResponse(openapi_document(server_url=settings.CONSOLE_SITE_URL))
