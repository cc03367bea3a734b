"""The gateway API's OpenAPI document lists both endpoints and every code of the contract."""

from __future__ import annotations

import inspect
import json
import re

from billing import services
from billing.openapi import REJECTION_REASONS


def test_openapi_document_describes_the_contract(client):
    response = client.get("/api/v1/gateway/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {"/api/v1/gateway/authorize", "/api/v1/gateway/usage"}
    assert set(document["paths"]["/api/v1/gateway/authorize"]) == {"get", "post"}
    text = json.dumps(document)
    for code in ["invalid_api_key", "invalid_gateway_token", "insufficient_balance", "daily_budget_exceeded",
                 "monthly_budget_exceeded", "project_archived", "rate_limited", "invalid_json", "too_many_events",
                 "payload_too_large", "service_unavailable", *REJECTION_REASONS]:
        assert f'"{code}"' in text, code
    authorize_200 = document["paths"]["/api/v1/gateway/authorize"]["get"]["responses"]["200"]
    assert {"X-Organization-Id", "X-Project-Id", "X-Key-Id", "X-RateLimit-Limit-Tokens",
            "X-RateLimit-Remaining-Tokens"} <= set(authorize_200["headers"])
    assert document["components"]["securitySchemes"]["gatewayToken"]["name"] == "X-Gateway-Token"


def test_every_rejection_reason_the_service_can_give_is_documented():
    source = inspect.getsource(services)
    given = set(re.findall(r'Rejection\(.*?"([a-z_]+)"\)', source))
    assert given == set(REJECTION_REASONS)
