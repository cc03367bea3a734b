"""Every machine-readable code of the gateway API, declared once.

`billing/api.py` answers with them, the services decide with them, `billing/openapi.py` documents
them and the tests read them from here: a new code is added in one place.
"""

from __future__ import annotations

from enum import StrEnum


class Denial(StrEnum):
    """Why authorize says no to a key (the contract's 401, 403 and 429 codes)."""

    INVALID_API_KEY = "invalid_api_key"
    PROJECT_ARCHIVED = "project_archived"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    DAILY_BUDGET_EXCEEDED = "daily_budget_exceeded"
    MONTHLY_BUDGET_EXCEEDED = "monthly_budget_exceeded"
    RATE_LIMITED = "rate_limited"

    @property
    def status(self) -> int:
        return _DENIAL_STATUS[self]


_DENIAL_STATUS = {
    Denial.INVALID_API_KEY: 401,
    Denial.PROJECT_ARCHIVED: 403,
    Denial.INSUFFICIENT_BALANCE: 403,
    Denial.DAILY_BUDGET_EXCEEDED: 403,
    Denial.MONTHLY_BUDGET_EXCEEDED: 403,
    Denial.RATE_LIMITED: 429,
}


def denials_with_status(status: int) -> list[str]:
    return [code.value for code in Denial if code.status == status]


def request_errors_with_status(status: int) -> list[str]:
    return [code.value for code in RequestError if code.status == status]


class RequestError(StrEnum):
    """Errors of the request itself, on any gateway endpoint (not a decision about a key)."""

    INVALID_GATEWAY_TOKEN = "invalid_gateway_token"  # noqa: S105 -- a code, not a secret
    METHOD_NOT_ALLOWED = "method_not_allowed"
    INVALID_ESTIMATED_TOKENS = "invalid_estimated_tokens"
    INVALID_AUTHORIZATION_ID = "invalid_authorization_id"
    INVALID_JSON = "invalid_json"
    INVALID_BODY = "invalid_body"
    TOO_MANY_EVENTS = "too_many_events"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    SERVICE_UNAVAILABLE = "service_unavailable"

    @property
    def status(self) -> int:
        return _REQUEST_STATUS[self]


_REQUEST_STATUS = {
    RequestError.INVALID_GATEWAY_TOKEN: 401,
    RequestError.METHOD_NOT_ALLOWED: 405,
    RequestError.INVALID_ESTIMATED_TOKENS: 400,
    RequestError.INVALID_AUTHORIZATION_ID: 400,
    RequestError.INVALID_JSON: 400,
    RequestError.INVALID_BODY: 400,
    RequestError.TOO_MANY_EVENTS: 400,
    RequestError.PAYLOAD_TOO_LARGE: 413,
    RequestError.SERVICE_UNAVAILABLE: 503,
}


class RejectReason(StrEnum):
    """Why one usage event of a batch was rejected (the others are still stored)."""

    INVALID_EVENT = "invalid_event"
    INVALID_ID = "invalid_id"
    UNKNOWN_KEY = "unknown_key"
    UNKNOWN_MODEL = "unknown_model"
    INVALID_TOKENS = "invalid_tokens"
    INVALID_TIMESTAMP = "invalid_timestamp"
    TIMESTAMP_IN_FUTURE = "timestamp_in_future"
    TIMESTAMP_TOO_OLD = "timestamp_too_old"
    CONFLICTING_DUPLICATE = "conflicting_duplicate"
    INVALID_AUTHORIZATION_ID = "invalid_authorization_id"


class RateLimit(StrEnum):
    """Which rate limit a 429 names (its `limit` field)."""

    CONCURRENCY = "concurrency"
    REQUESTS_PER_MINUTE = "requests_per_minute"
    TOKENS_PER_MINUTE = "tokens_per_minute"
    TOKENS_PER_DAY = "tokens_per_day"


class RateScope(StrEnum):
    """Whose limit it is (a 429's `scope` field)."""

    ORGANIZATION = "organization"
    PROJECT = "project"
