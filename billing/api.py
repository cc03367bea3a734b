"""The gateway API (machine to machine, JSON): authorize a call, ingest usage, the OpenAPI document.

Contract: DESIGN.md "The gateway API" and `billing/openapi.py`. The gateway authenticates with a
shared token in `X-Gateway-Token`; `Authorization` carries the customer's API key.

Every error is JSON `{"error": {"code", "message"}}`. On authorize, the same body also travels in
the `X-Gateway-Error` header, because nginx's `auth_request` drops the body of the answer it gets
(the sample configuration in deploy/nginx/ returns that header as the client's body).

The database unreachable → 503 and nothing is authorized (fail closed); Redis unreachable → the
rate limiter fails open for all four limits (see billing/limiter.py).
"""

from __future__ import annotations

import functools
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from console.errors import DomainError

from .codes import Denial, RejectReason, RequestError
from .limiter import Decision
from .openapi import MAX_ESTIMATED_TOKENS, MAX_TOKENS_PER_EVENT, openapi_document
from .ratelimits import authorization_release
from .services.enforcement import gateway_authorize
from .services.ingest import MAX_EVENTS_PER_BATCH, IngestResult, Rejection, UsageEventIn, usage_ingest

logger = structlog.get_logger(__name__)

MAX_EVENT_ID_LENGTH = 128
MAX_AUTHORIZATION_ID_LENGTH = 200


def _error(
    code: Denial | RequestError, message: str, *, headers: dict[str, str] | None = None, **fields: str
) -> JsonResponse:
    status = code.status
    body = {"error": {"code": code.value, **fields, "message": message}}
    response = JsonResponse(body, status=status, headers=headers)
    response["X-Gateway-Error"] = json.dumps(body, separators=(",", ":"), ensure_ascii=True)
    response.gateway_error_code = code.value  # type: ignore[attr-defined]  # for the request log line
    return response


def _reset(seconds: float) -> str:
    """A duration as OpenAI's X-RateLimit-Reset-* headers write it: "20ms", "8.64s", "6m0s"."""
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    if seconds < 60:
        return f"{round(seconds, 2):g}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest}s"


def rate_limit_headers(rate: Decision) -> dict[str, str]:
    """OpenAI's rate-limit headers (requests: the tighter RPM; tokens: the tighter TPM), on 200 and 429."""
    reset = _reset(rate.reset_seconds)
    headers = {
        "X-RateLimit-Limit-Requests": str(rate.requests_limit),
        "X-RateLimit-Remaining-Requests": str(rate.requests_remaining),
        "X-RateLimit-Reset-Requests": reset,
        "X-RateLimit-Limit-Tokens": str(rate.tokens_limit),
        "X-RateLimit-Remaining-Tokens": str(rate.tokens_remaining),
        "X-RateLimit-Reset-Tokens": reset,
    }
    if rate.retry_after:
        headers["Retry-After"] = str(rate.retry_after)
    return headers


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
        response = _error(RequestError.METHOD_NOT_ALLOWED, f"Use {' or '.join(methods)}.")
        response["Allow"] = ", ".join(methods)
        return response
    if not _gateway_token_valid(request.META.get("HTTP_X_GATEWAY_TOKEN")):
        return _error(RequestError.INVALID_GATEWAY_TOKEN, "The X-Gateway-Token header is missing or wrong.")
    try:
        return view(request)
    except (OperationalError, InterfaceError) as exc:
        logger.error("gateway_database_unavailable", error=exc.__class__.__name__)
        return _error(RequestError.SERVICE_UNAVAILABLE, "The console cannot reach its database. Try again shortly.",
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
            return _error(RequestError.INVALID_ESTIMATED_TOKENS,
                          f"X-Estimated-Tokens must be a whole number from 0 to {MAX_ESTIMATED_TOKENS} "
                          "in ASCII digits.")
        estimated = parsed
    decision = gateway_authorize(raw_key=_bearer(request.META.get("HTTP_AUTHORIZATION")), estimated_tokens=estimated)
    headers = rate_limit_headers(decision.rate) if decision.rate is not None else {}
    if not decision.allowed:
        assert decision.code is not None  # noqa: S101 -- a denial always carries its code  # nosec B101
        # A 429 names the limit and its scope: {"error": {"code", "limit", "scope", "message"}}.
        rate = decision.rate
        which = {"limit": rate.limit, "scope": rate.scope} if rate is not None and decision.status == 429 else {}
        return _error(decision.code, decision.message, headers=headers, **which)
    key = decision.key
    assert key is not None  # noqa: S101 -- an allowed decision always carries its key  # nosec B101
    ids = {
        "organization_id": key.organization_public_id,
        "project_id": key.project_public_id,
        "key_id": key.public_id,
    }
    headers.update({"X-Organization-Id": ids["organization_id"], "X-Project-Id": ids["project_id"],
                    "X-Key-Id": ids["key_id"]})
    if decision.rate is not None and decision.rate.authorization_id:
        ids["authorization_id"] = headers["X-Authorization-Id"] = decision.rate.authorization_id
    return JsonResponse(ids, headers=headers)


@gateway_endpoint("POST")
def release(request: HttpRequest) -> HttpResponse:
    """Free a call's concurrency slot before its usage is reported (the usage report frees it too)."""
    authorization_id = request.META.get("HTTP_X_AUTHORIZATION_ID", "").strip()
    if not authorization_id:
        body = _read_body(request, 4096)
        payload = _json_body(body) if body else {}
        if isinstance(payload, JsonResponse):
            return payload
        value = payload.get("authorization_id") if isinstance(payload, dict) else None
        authorization_id = value if isinstance(value, str) else ""
    if not authorization_id:
        return _error(RequestError.INVALID_AUTHORIZATION_ID,
                      "Send the authorization_id that authorize returned, in X-Authorization-Id or the JSON body.")
    if not authorization_release(authorization_id=authorization_id):
        return _error(RequestError.UNKNOWN_AUTHORIZATION, "No call was authorized with this authorization_id.")
    return JsonResponse({"released": True})


def _read_body(request: HttpRequest, limit: int) -> bytes | None:
    """The body, or None when it is larger than `limit` (checked before reading it all)."""
    declared = ascii_whole_number(request.META.get("CONTENT_LENGTH") or "0", maximum=2**63) or 0
    if declared > limit:
        return None
    body = request.read(limit + 1)
    return None if len(body) > limit else body


def _json_body(body: bytes) -> Any:
    """The body's JSON value, or the 400 invalid_json answer for anything malformed: bytes that are
    not UTF-8, bad syntax, a number longer than int() takes, or nesting deeper than Python's
    recursion limit (json raises RecursionError there, which no ValueError handler catches)."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return _error(RequestError.INVALID_JSON, "The body is not valid JSON.")
    except RecursionError:
        return _error(RequestError.INVALID_JSON, "The body is nested too deeply.")


def _token_count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKENS_PER_EVENT:
        return None
    return value


def _parse_event(index: int, raw: Any, now: datetime) -> UsageEventIn | Rejection:
    """Shape and field rules of one event; rejections carry the reason code of the contract."""
    if not isinstance(raw, dict):
        return Rejection(index, None, RejectReason.INVALID_EVENT)
    event_id = raw.get("id")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_EVENT_ID_LENGTH or not event_id.isprintable():
        return Rejection(index, event_id if isinstance(event_id, str) else None, RejectReason.INVALID_ID)
    key_id = raw.get("key_id")
    if not isinstance(key_id, str) or not key_id:
        return Rejection(index, event_id, RejectReason.UNKNOWN_KEY)
    model = raw.get("model")
    if not isinstance(model, str) or not model:
        return Rejection(index, event_id, RejectReason.UNKNOWN_MODEL)
    input_tokens = _token_count(raw.get("input_tokens"))
    output_tokens = _token_count(raw.get("output_tokens"))
    if input_tokens is None or output_tokens is None:
        return Rejection(index, event_id, RejectReason.INVALID_TOKENS)
    estimate = raw.get("estimated_tokens", settings.CONSOLE_DEFAULT_ESTIMATED_TOKENS)
    estimated_tokens = _token_count(estimate)
    if estimated_tokens is None:
        return Rejection(index, event_id, RejectReason.INVALID_TOKENS)
    authorization_id = raw.get("authorization_id", "")
    if not isinstance(authorization_id, str) or len(authorization_id) > MAX_AUTHORIZATION_ID_LENGTH:
        return Rejection(index, event_id, RejectReason.INVALID_AUTHORIZATION_ID)
    text = raw.get("occurred_at")
    try:
        occurred_at = parse_datetime(text) if isinstance(text, str) else None
    except ValueError:
        occurred_at = None
    if occurred_at is None:
        return Rejection(index, event_id, RejectReason.INVALID_TIMESTAMP)
    if timezone.is_naive(occurred_at):
        occurred_at = occurred_at.replace(tzinfo=UTC)  # the contract's timestamps are UTC unless they say otherwise
    if occurred_at > now + timedelta(seconds=settings.CONSOLE_USAGE_MAX_FUTURE_SECONDS):
        return Rejection(index, event_id, RejectReason.TIMESTAMP_IN_FUTURE)
    if occurred_at < now - timedelta(days=settings.CONSOLE_USAGE_MAX_AGE_DAYS):
        return Rejection(index, event_id, RejectReason.TIMESTAMP_TOO_OLD)
    return UsageEventIn(
        index=index,
        event_id=event_id,
        key_id=key_id,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        occurred_at=occurred_at.astimezone(UTC),
        estimated_tokens=estimated_tokens,
        authorization_id=authorization_id,
    )


def usage_report(raw_events: list[Any], *, now: datetime | None = None) -> IngestResult:
    """A batch in the contract's wire format: each event parsed on its own (a bad one is rejected
    with its reason), the valid ones ingested; rejections of both steps in batch order."""
    now = now or timezone.now()
    parsed: list[UsageEventIn] = []
    rejected: list[Rejection] = []
    for index, raw in enumerate(raw_events):
        item = _parse_event(index, raw, now)
        if isinstance(item, Rejection):
            rejected.append(item)
        else:
            parsed.append(item)
    result = usage_ingest(events=parsed, now=now) if parsed else IngestResult()
    result.rejected = sorted([*rejected, *result.rejected], key=lambda r: r.index)
    return result


@gateway_endpoint("POST")
def usage(request: HttpRequest) -> HttpResponse:
    limit: int = settings.CONSOLE_USAGE_MAX_BODY_BYTES
    body = _read_body(request, limit)
    if body is None:
        return _error(RequestError.PAYLOAD_TOO_LARGE, f"The body is larger than {limit:,} bytes; send smaller batches.")
    payload = _json_body(body)
    if isinstance(payload, JsonResponse):
        return payload
    events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(events, list):
        return _error(RequestError.INVALID_BODY, 'The body must be a JSON object with an "events" array.')
    if len(events) > MAX_EVENTS_PER_BATCH:
        return _error(RequestError.TOO_MANY_EVENTS, f"Send at most {MAX_EVENTS_PER_BATCH} events per request.")
    try:
        result = usage_report(events)
    except DomainError as exc:
        return _error(RequestError.INVALID_BODY, exc.message)
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
