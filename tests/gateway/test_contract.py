"""Contract fuzzing of the gateway API with schemathesis, against /api/v1/gateway/openapi.json.

The requests go through console.wsgi's application itself (the gateway's lean stack), on the test
PostgreSQL and Redis. Every generated request — valid and invalid headers and bodies — must get
an answer the document describes: never a 5xx, the status, headers, content type and body as
documented. The state machine follows the document's links: authorize, then report usage with
the key id it returned.

About half of the calls carry a real, funded API key (a random one only ever meets 401).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import negative_data_rejection

from billing.limiter import get_limiter
from billing.models import LedgerEntry, LedgerKind, UsageEvent
from billing.tests.factories import PriceFactory, fund, make_api_key
from console.handlers import ConsoleApplication
from projects.models import Project
from tests.gateway.figures import FIGURES

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

GATEWAY_TOKEN = "test-gateway-token"
EXAMPLES = 150  # per operation (three operations); the stateful run adds its own steps
FUZZ = hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples every run: a failure here is reproducible
    suppress_health_check=list(hypothesis.HealthCheck),
    database=None,
)

examples_run = FIGURES.setdefault(
    "schemathesis requests (stateless examples, stateful steps)", {"stateless": 0, "stateful": 0}
)


@pytest.fixture(autouse=True)
def _keep_the_test_transaction() -> Iterator[None]:
    """What Django's test client does: the application's per-request connection close would end
    the test's transaction (and its data) after the first call."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def funded_key(db: None) -> str:
    """A key of a funded project whose TPM fills up now and then (429s are part of the contract)."""
    PriceFactory(model="gpt-test")
    raw, key = make_api_key()
    Project.objects.filter(pk=key.project_id).update(tpm_limit=200_000)
    fund(key.organization, "100000")
    return raw


# Loaded at collection from the application itself (the document needs no database). Not
# schemathesis.pytest.from_fixture: its lazy loader writes a node attribute pytest 9 removed.
schema = schemathesis.openapi.from_wsgi("/api/v1/gateway/openapi.json", ConsoleApplication())


@schema.auth()
class GatewayToken:
    """The gateway's own token, as schemathesis' explicit credentials: its auth check then also
    probes each operation without it and with a wrong one (both must be 401)."""

    def get(self, case: Any, context: Any) -> str:
        return GATEWAY_TOKEN

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "X-Gateway-Token": data}


def batch_accounted_for(ctx: Any, response: Any, case: Any) -> bool | None:
    if response.status_code != 200:
        return None
    result = response.json()
    events = case.body["events"]
    indexes = [r["index"] for r in result["rejected"]]
    assert len(indexes) == len(set(indexes)), f"an event rejected twice: {result}"
    assert all(0 <= i < len(events) for i in indexes), f"a rejection of no event: {result}"
    assert result["accepted"] + result["duplicates"] + len(indexes) == len(events), result
    return True


def _checks_for(case: Any) -> dict[str, Any]:
    """All of schemathesis' checks, except on usage: a batch whose events break the event schema
    is still a 200 by contract (each bad event is rejected on its own, with its index and reason).
    There, instead of "invalid data gets a 4xx": every event of a 200 is accounted for once."""
    if case.operation.path.endswith("/usage"):
        return {"excluded_checks": [negative_data_rejection], "additional_checks": [batch_accounted_for]}
    return {}


def _with_credentials(case: Any, raw_key: str, use_real_key: bool) -> None:
    case.headers = dict(case.headers or {})
    if use_real_key and "Authorization" in case.headers:
        case.headers["Authorization"] = f"Bearer {raw_key}"


def _recent_and_priced(case: Any) -> None:
    """A generated usage event is stamped any time in history with any model: make the events that
    carry the linked key id current and priced, so the link leads to stored, charged usage."""
    events = case.body.get("events") if isinstance(case.body, dict) else None
    for event in events if isinstance(events, list) else []:
        if isinstance(event, dict) and isinstance(event.get("key_id"), str) and event["key_id"].startswith("key_"):
            event["occurred_at"] = timezone.now().isoformat()
            event["model"] = "gpt-test"


@schema.parametrize()
@schema.given(use_real_key=st.booleans())
@FUZZ
def test_every_answer_conforms_to_the_contract(case: Any, use_real_key: bool, funded_key: str) -> None:
    _with_credentials(case, funded_key, use_real_key)
    case.call_and_validate(**_checks_for(case))
    examples_run["stateless"] += 1


def test_authorize_then_usage_follows_the_links(funded_key: str) -> None:
    """Stateful: authorize's 200 links to usage with the key id it returned; usage is charged."""
    machine = schema.as_state_machine()

    class GatewayWorkflow(machine):  # type: ignore[misc,valid-type]
        def setup(self) -> None:
            # Each scenario starts with empty rate-limit windows and leases (every key of the
            # limiter starts "rl:"): hypothesis replays a scenario and expects the same answers,
            # which windows filled by the previous scenarios would change.
            limiter = get_limiter()
            for name in limiter.client.scan_iter("rl:*"):  # type: ignore[attr-defined]
                limiter.client.delete(name)  # type: ignore[attr-defined]

        def before_call(self, case: Any) -> None:
            _with_credentials(case, funded_key, True)
            _recent_and_priced(case)

        def after_call(self, response: Any, case: Any) -> None:
            examples_run["stateful"] += 1

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            case.validate_response(response, **_checks_for(case))

    GatewayWorkflow.run(settings=hypothesis.settings(
        max_examples=40, stateful_step_count=6, deadline=None, derandomize=True, database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    ))
    # The links were followed: usage reported with authorize's key id was stored and charged.
    assert UsageEvent.objects.exists()
    charged = -sum(e.amount for e in LedgerEntry.objects.filter(kind=LedgerKind.USAGE))
    assert charged == sum(e.cost for e in UsageEvent.objects.all())
