"""The gateway API's OpenAPI document lists both endpoints and every code of the contract."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from billing.codes import Denial, RateLimit, RejectReason, RequestError


def test_openapi_document_describes_the_contract(client):
    response = client.get("/api/v1/gateway/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {"/api/v1/gateway/authorize", "/api/v1/gateway/usage",
                                      "/api/v1/gateway/release"}
    assert set(document["paths"]["/api/v1/gateway/authorize"]) == {"get", "post"}
    text = json.dumps(document)
    for code in ["invalid_api_key", "invalid_gateway_token", "insufficient_balance", "daily_budget_exceeded",
                 "monthly_budget_exceeded", "project_archived", "rate_limited", "invalid_json", "too_many_events",
                 "payload_too_large", "service_unavailable"]:
        assert f'"{code}"' in text, code
    authorize_200 = document["paths"]["/api/v1/gateway/authorize"]["get"]["responses"]["200"]
    rate_headers = {f"X-RateLimit-{what}-{unit}" for what in ("Limit", "Remaining", "Reset")
                    for unit in ("Requests", "Tokens")}
    assert {"X-Organization-Id", "X-Project-Id", "X-Key-Id", "X-Authorization-Id", *rate_headers} <= set(
        authorize_200["headers"])
    authorize_429 = document["paths"]["/api/v1/gateway/authorize"]["get"]["responses"]["429"]
    assert {"Retry-After", *rate_headers} <= set(authorize_429["headers"])
    limited = document["components"]["schemas"]["RateLimited"]["properties"]["error"]["properties"]
    assert limited["limit"]["enum"] == ["concurrency", "requests_per_minute", "tokens_per_minute", "tokens_per_day"]
    assert limited["scope"]["enum"] == ["organization", "project"]
    assert "authorization_id" in document["components"]["schemas"]["UsageEvent"]["properties"]
    assert document["components"]["securitySchemes"]["gatewayToken"]["name"] == "X-Gateway-Token"


def test_every_code_of_the_api_is_documented_under_its_status(client):
    """The codes are declared once (billing/codes.py); the document lists each under its status."""
    document = client.get("/api/v1/gateway/openapi.json").json()
    documented: dict[str, set[str]] = {}
    for path in document["paths"].values():
        for operation in path.values():
            for status, response in operation["responses"].items():
                examples = response.get("content", {}).get("application/json", {}).get("examples", {})
                documented.setdefault(status, set()).update(examples)
    for code in [*Denial, *RequestError]:
        if code is RequestError.METHOD_NOT_ALLOWED:
            continue  # any method but the documented ones: not an operation of its own
        assert code.value in documented.get(str(code.status), set()), code
    schema = document["components"]["schemas"]["UsageResult"]["properties"]["rejected"]["items"]
    assert set(schema["properties"]["error"]["enum"]) == {reason.value for reason in RejectReason}


def test_the_gateway_code_names_its_codes_through_billing_codes():
    """A code spelled as a literal string drifts when the enum changes: api.py, openapi.py,
    ratelimits.py and the services name every code through billing/codes.py."""
    codes = {code.value for enum in (Denial, RequestError, RejectReason, RateLimit) for code in enum}
    # The projects app's own word for a key's state (projects/keys.py), not the gateway's code.
    not_codes = {("services/enforcement.py", "project_archived")}
    billing = Path(__file__).resolve().parents[1]
    found = []
    for path in [billing / "api.py", billing / "openapi.py", billing / "ratelimits.py",
                 *sorted((billing / "services").glob("*.py"))]:
        tree = ast.parse(path.read_text())
        docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and node.value in codes and id(node) not in docstrings
                    and (str(path.relative_to(billing)), node.value) not in not_codes):
                found.append(f"{path.relative_to(billing)}:{node.lineno}: {node.value!r}")
    assert found == [], "\n".join(found)
