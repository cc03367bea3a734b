"""The OpenAPI 3.1 document of the gateway API, served at /api/v1/gateway/openapi.json."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .codes import Denial, RateLimit, RateScope, RejectReason, RequestError, denials_with_status
from .services.ingest import MAX_EVENTS_PER_BATCH

REJECTION_REASONS = [reason.value for reason in RejectReason]
# The contract's bounds (billing/api.py parses by them): token counts and the estimate.
MAX_TOKENS_PER_EVENT = 10**9
MAX_ESTIMATED_TOKENS = MAX_TOKENS_PER_EVENT

RATE_LIMITS = [limit.value for limit in RateLimit]


def _error(codes: Sequence[str], description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/Error"},
                "examples": {str(code): {"value": {"error": {"code": str(code), "message": "…"}}} for code in codes},
            }
        },
    }


_GATEWAY_TOKEN: dict[str, list[str]] = {"gatewayToken": []}
_ID_HEADERS = {
    name: {"schema": {"type": "string"}, "description": description}
    for name, description in (
        ("X-Organization-Id", "The key's organization (also in the body)."),
        ("X-Project-Id", "The key's project."),
        ("X-Key-Id", "The key's id: report usage with it as `key_id`."),
    )
}
_RATE_HEADERS = {  # OpenAI's names and formats
    "X-RateLimit-Limit-Requests": {
        "schema": {"type": "integer"},
        "description": "The project's effective RPM: min(project RPM, organization RPM), or the organization's.",
    },
    "X-RateLimit-Remaining-Requests": {
        "schema": {"type": "integer"},
        "description": "Requests left in the current minute window (the tighter of organization and project).",
    },
    "X-RateLimit-Reset-Requests": {
        "schema": {"type": "string", "examples": ["20ms", "8.64s", "1m0s"]},
        "description": "Until the current minute stops counting in full (a duration, as OpenAI writes it).",
    },
    "X-RateLimit-Limit-Tokens": {
        "schema": {"type": "integer"},
        "description": "The project's effective TPM: min(project TPM, organization TPM).",
    },
    "X-RateLimit-Remaining-Tokens": {
        "schema": {"type": "integer"},
        "description": "Tokens left in the current window (the tighter of organization and project).",
    },
    "X-RateLimit-Reset-Tokens": {
        "schema": {"type": "string", "examples": ["20ms", "8.64s", "1m0s"]},
        "description": "Until the current minute stops counting in full.",
    },
}
_AUTHORIZATION_ID = {
    "X-Authorization-Id": {
        "schema": {"type": "string"},
        "description": "This call's authorization (also in the body): send it as the usage event's "
                       "`authorization_id`, or to /release, to free its concurrency slot.",
    },
}

_AUTHORIZE = {
    "summary": "May this API key make a call now?",
    "description": (
        "Checks in order: gateway token, API key (unknown, malformed, revoked or expired → 401), "
        "archived project, organization balance, project daily then monthly budget, then the rate "
        "limits, all in one atomic decision: the organization's concurrency, requests per minute, "
        "tokens per minute and tokens per day (its rate tier), and the project's TPM and optional RPM "
        "(each capped by the organization's). A denial consumes nothing. An allowed call holds one "
        "concurrency slot until its usage is reported, `/release` is called, or the lease expires "
        "(a setting, default 10 minutes). The tokens counted are the estimate, at least a configured "
        "minimum; the usage report corrects them to the actual tokens. "
        "Error bodies are also sent in the `X-Gateway-Error` header (for nginx `auth_request`)."
    ),
    "security": [_GATEWAY_TOKEN],
    "parameters": [
        {"name": "Authorization", "in": "header", "required": True, "schema": {"type": "string"},
         "description": "`Bearer <customer API key>`"},
        {"name": "X-Estimated-Tokens", "in": "header", "required": False,
         "schema": {"type": "integer", "minimum": 0, "maximum": MAX_TOKENS_PER_EVENT},
         "description": "Tokens this call is expected to use, in ASCII digits, counted against TPM and TPD "
                        "(default: a setting; never less than `CONSOLE_MIN_ESTIMATED_TOKENS`). Report the "
                        "call's usage with the returned `authorization_id` so the windows are corrected to "
                        "the actual tokens."},
    ],
    "responses": {
        "200": {
            "description": "Allowed.",
            "headers": {**_ID_HEADERS, **_AUTHORIZATION_ID, **_RATE_HEADERS},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Authorized"}}},
            "links": {
                "ReportUsage": {
                    "operationId": "reportUsage",
                    "description": "After the call, report what it consumed with the key id authorize returned.",
                    "requestBody": {"events": [{"key_id": "$response.body#/key_id"}]},
                }
            },
        },
        "400": _error([RequestError.INVALID_ESTIMATED_TOKENS, RequestError.INVALID_HOST],
                      "X-Estimated-Tokens is not a whole number in ASCII digits, or the Host is not served."),
        "401": _error([*denials_with_status(401), RequestError.INVALID_GATEWAY_TOKEN], "Bad API key or gateway token."),
        "403": _error(denials_with_status(403), "Denied by balance, budget or project state."),
        "429": {
            "description": "A rate limit is full: the body's `limit` and `scope` say which.",
            "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/RateLimited"},
                # "rate_limited" (the code, as every other error lists its codes), then one per limit.
                "examples": {name: {"value": {"error": {"code": Denial.RATE_LIMITED.value, "limit": limit,
                                                        "scope": RateScope.ORGANIZATION.value, "message": "…"}}}
                             for name, limit in [(Denial.RATE_LIMITED.value, RateLimit.REQUESTS_PER_MINUTE.value),
                                                 *[(f"{Denial.RATE_LIMITED.value}_{limit}", limit)
                                                   for limit in RATE_LIMITS]]},
            }},
            "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": (
                "Seconds until this call would fit if nothing else arrived: the sliding minute's "
                "share for RPM/TPM (up to two minutes), 00:00 UTC for TPD, 1 for concurrency.")},
                **_RATE_HEADERS},
        },
        "503": _error(
            [RequestError.SERVICE_UNAVAILABLE], "The console's database cannot be reached: nothing is authorized."
        ),
    },
}

_RELEASE = {
    "summary": "Free a call's concurrency slot now.",
    "description": (
        "The usage report of a call that carries its `authorization_id` frees the slot too; a slot "
        "nobody frees expires with its lease. Releasing twice is harmless. The id goes in the "
        "`X-Authorization-Id` header (what a proxy can send; the body is then optional) or the JSON body."
    ),
    "security": [_GATEWAY_TOKEN],
    "parameters": [{"name": "X-Authorization-Id", "in": "header", "required": False, "schema": {"type": "string"}}],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {
            "type": "object", "required": ["authorization_id"],
            "properties": {"authorization_id": {"type": "string", "minLength": 1, "maxLength": 200}}}}},
    },
    "responses": {
        "200": {"description": "Released.", "content": {"application/json": {"schema": {
            "type": "object", "required": ["released"], "properties": {"released": {"type": "boolean"}}}}}},
        "400": _error([RequestError.INVALID_AUTHORIZATION_ID, RequestError.INVALID_JSON], "No id, or not JSON."),
        "404": _error([RequestError.UNKNOWN_AUTHORIZATION], "Not an id authorize issued."),
        "401": _error([RequestError.INVALID_GATEWAY_TOKEN], "Missing or wrong gateway token."),
    },
}

_USAGE = {
    "summary": "Report what calls consumed.",
    "description": (
        f"Up to {MAX_EVENTS_PER_BATCH} events per request. Each event is validated on its own: a bad "
        "one is rejected with its index, id and reason, the others are stored. Idempotent by event "
        "id: a re-sent event counts as a duplicate and is never charged twice; the same id with "
        "different content is rejected as `conflicting_duplicate`. Costs use the model's price in "
        "force at `occurred_at`; the organization's balance and the project's spend move in the "
        "same transaction, so authorize sees them at once. After commit, each new event corrects the "
        "rate-limit token windows (TPM, TPD) of the minute its call was authorized in to its actual "
        "tokens and frees its concurrency slot, when it carries `authorization_id`; without it, "
        "the event's minute and `estimated_tokens` stand in and the slot expires with its lease."
    ),
    "security": [_GATEWAY_TOKEN],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/UsageBatch"}}},
    },
    "responses": {
        "200": {
            "description": "Processed (some events may be rejected).",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/UsageResult"}}},
        },
        "400": _error(
            [RequestError.INVALID_JSON, RequestError.INVALID_BODY, RequestError.TOO_MANY_EVENTS,
             RequestError.INVALID_HOST],
            "Malformed body, or the Host is not served.",
        ),
        "401": _error([RequestError.INVALID_GATEWAY_TOKEN], "Missing or wrong gateway token."),
        "413": _error([RequestError.PAYLOAD_TOO_LARGE], "The body is over the size limit."),
        "503": _error([RequestError.SERVICE_UNAVAILABLE], "The console's database cannot be reached; retry the batch."),
    },
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
    "RateLimited": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "limit", "scope", "message"],
                "properties": {
                    "code": {"type": "string", "const": Denial.RATE_LIMITED.value},
                    "limit": {"type": "string", "enum": RATE_LIMITS},
                    "scope": {"type": "string", "enum": [scope.value for scope in RateScope]},
                    "message": {"type": "string"},
                },
            }
        },
    },
    "Authorized": {
        "type": "object",
        "required": ["organization_id", "project_id", "key_id"],
        "properties": {
            "authorization_id": {"type": "string", "description": "Report it with the call's usage event."},
            "organization_id": {"type": "string", "examples": ["org-…"]},
            "project_id": {"type": "string", "examples": ["proj_…"]},
            "key_id": {"type": "string", "examples": ["key_…"]},
        },
    },
    "UsageEvent": {
        "type": "object",
        "required": ["id", "key_id", "model", "input_tokens", "output_tokens", "occurred_at"],
        "properties": {
            "id": {"type": "string", "minLength": 1, "maxLength": 128, "description": "Unique per call."},
            "key_id": {"type": "string", "description": "The key id that authorize returned."},
            "model": {"type": "string", "description": "A model with a price."},
            "input_tokens": {"type": "integer", "minimum": 0, "maximum": MAX_TOKENS_PER_EVENT},
            "output_tokens": {"type": "integer", "minimum": 0, "maximum": MAX_TOKENS_PER_EVENT},
            "occurred_at": {"type": "string", "format": "date-time",
                            "description": "ISO 8601; UTC when no offset is given."},
            "estimated_tokens": {"type": "integer", "minimum": 0, "maximum": MAX_TOKENS_PER_EVENT,
                                 "description": "Optional: the X-Estimated-Tokens sent to authorize "
                                                "(used only when `authorization_id` is absent)."},
            "authorization_id": {"type": "string", "maxLength": 200,
                                 "description": "Optional, recommended: the `authorization_id` authorize "
                                                "returned for this call. Its token windows are then "
                                                "corrected in the minute it was authorized in, by what "
                                                "authorize counted, and its concurrency slot is freed. "
                                                "Several events may name one authorization (streamed "
                                                "chunks): each adds its tokens, the estimate is given "
                                                "back once."},
        },
    },
    "UsageBatch": {
        "type": "object",
        "required": ["events"],
        "properties": {
            "events": {"type": "array", "maxItems": MAX_EVENTS_PER_BATCH,
                       "items": {"$ref": "#/components/schemas/UsageEvent"}}
        },
    },
    "UsageResult": {
        "type": "object",
        "required": ["accepted", "duplicates", "rejected"],
        "properties": {
            "accepted": {"type": "integer"},
            "duplicates": {"type": "integer"},
            "rejected": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["index", "id", "error"],
                    "properties": {
                        "index": {"type": "integer"},
                        "id": {"type": ["string", "null"]},
                        "error": {"type": "string", "enum": REJECTION_REASONS},
                    },
                },
            },
        },
    },
}


def openapi_document(*, server_url: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Organization console — gateway API",
            "version": "1",
            "description": "For the API gateway in front of the model servers: authorize calls, report usage.",
        },
        "servers": [{"url": server_url}],
        "paths": {
            "/api/v1/gateway/authorize": {
                "get": {**_AUTHORIZE, "operationId": "authorize"},
                "post": {**_AUTHORIZE, "operationId": "authorizePost"},
            },
            "/api/v1/gateway/usage": {"post": {**_USAGE, "operationId": "reportUsage"}},
            "/api/v1/gateway/release": {"post": {**_RELEASE, "operationId": "release"}},
        },
        "components": {
            "securitySchemes": {"gatewayToken": {"type": "apiKey", "in": "header", "name": "X-Gateway-Token"}},
            "schemas": _SCHEMAS,
        },
    }
