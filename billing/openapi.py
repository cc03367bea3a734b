"""The OpenAPI 3.1 document of the gateway API, served at /api/v1/gateway/openapi.json."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .codes import RejectReason, RequestError, denials_with_status
from .services.ingest import MAX_EVENTS_PER_BATCH

REJECTION_REASONS = [reason.value for reason in RejectReason]


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
_RATE_HEADERS = {
    "X-RateLimit-Limit-Tokens": {
        "schema": {"type": "integer"},
        "description": "The project's effective TPM: min(project TPM, organization TPM).",
    },
    "X-RateLimit-Remaining-Tokens": {
        "schema": {"type": "integer"},
        "description": "Tokens left in the current window (the tighter of organization and project).",
    },
}

_AUTHORIZE = {
    "summary": "May this API key make a call now?",
    "description": (
        "Checks in order: gateway token, API key (unknown, malformed, revoked or expired → 401), "
        "archived project, organization balance, project daily then monthly budget, then the "
        "organization's and the project's tokens-per-minute windows, checked and consumed together. "
        "Error bodies are also sent in the `X-Gateway-Error` header (for nginx `auth_request`)."
    ),
    "security": [_GATEWAY_TOKEN],
    "parameters": [
        {"name": "Authorization", "in": "header", "required": True, "schema": {"type": "string"},
         "description": "`Bearer <customer API key>`"},
        {"name": "X-Estimated-Tokens", "in": "header", "required": False,
         "schema": {"type": "integer", "minimum": 0},
         "description": "Tokens this call is expected to use, counted against TPM (default: a setting). "
                        "Report it again as the usage event's `estimated_tokens` so the window is corrected."},
    ],
    "responses": {
        "200": {
            "description": "Allowed.",
            "headers": {**_ID_HEADERS, **_RATE_HEADERS},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Authorized"}}},
        },
        "400": _error([RequestError.INVALID_ESTIMATED_TOKENS], "X-Estimated-Tokens is not a whole number."),
        "401": _error([*denials_with_status(401), RequestError.INVALID_GATEWAY_TOKEN], "Bad API key or gateway token."),
        "403": _error(denials_with_status(403), "Denied by balance, budget or project state."),
        "429": {
            **_error(denials_with_status(429), "A tokens-per-minute window is full."),
            "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}, **_RATE_HEADERS},
        },
        "503": _error(
            [RequestError.SERVICE_UNAVAILABLE], "The console's database cannot be reached: nothing is authorized."
        ),
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
        "same transaction, so authorize sees them at once."
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
            [RequestError.INVALID_JSON, RequestError.INVALID_BODY, RequestError.TOO_MANY_EVENTS], "Malformed body."
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
    "Authorized": {
        "type": "object",
        "required": ["organization_id", "project_id", "key_id"],
        "properties": {
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
            "input_tokens": {"type": "integer", "minimum": 0},
            "output_tokens": {"type": "integer", "minimum": 0},
            "occurred_at": {"type": "string", "format": "date-time",
                            "description": "ISO 8601; UTC when no offset is given."},
            "estimated_tokens": {"type": "integer", "minimum": 0,
                                 "description": "Optional: the X-Estimated-Tokens sent to authorize."},
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
        },
        "components": {
            "securitySchemes": {"gatewayToken": {"type": "apiKey", "in": "header", "name": "X-Gateway-Token"}},
            "schemas": _SCHEMAS,
        },
    }
