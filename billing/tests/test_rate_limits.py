"""The organization's shared rate limits through the gateway API, on PostgreSQL and Redis: each limit at
each level denies at exactly its value with OpenAI's answer, leases are freed, corrections apply, a
tier change applies to the next call."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest
from django.test import override_settings

from billing.tests.factories import PriceFactory, ProjectFactory, fund, make_api_key, usage_event
from orgs.models import Organization
from projects.models import Project

pytestmark = pytest.mark.django_db

WIDE = {"name": "Tier0", "min_topup": Decimal("0"), "concurrency": 1000, "rpm": 1000, "tpm": 10_000_000,
        "tpd": None}
RATE_HEADERS = [f"X-RateLimit-{what}-{unit}" for what in ("Limit", "Remaining", "Reset")
                for unit in ("Requests", "Tokens")]


def tiers(**limits) -> list[dict]:
    return [{**WIDE, **limits}, {**WIDE, "name": "Tier1", "min_topup": Decimal("1000"), "rpm": 5000}]


# (tier limits, project limits, estimate per call, calls that pass, the denial's limit and scope)
CASES = {
    "org-concurrency": ({"concurrency": 3}, {}, 100, 3, "concurrency", "organization"),
    "org-rpm": ({"rpm": 4}, {}, 100, 4, "requests_per_minute", "organization"),
    "org-tpm": ({"tpm": 5000}, {}, 1000, 5, "tokens_per_minute", "organization"),
    "org-tpd": ({"tpd": 6000}, {}, 1000, 6, "tokens_per_day", "organization"),
    "project-rpm": ({}, {"rpm_limit": 2}, 100, 2, "requests_per_minute", "project"),
    "project-tpm": ({}, {"tpm_limit": 3000}, 1000, 3, "tokens_per_minute", "project"),
}


def denial(response) -> dict:
    assert response.status_code == 429
    body = response.json()
    assert json.loads(response["X-Gateway-Error"]) == body  # what nginx returns as the body
    return body["error"]


@pytest.mark.parametrize(("tier", "project", "estimate", "passes", "limit", "scope"), CASES.values(), ids=CASES.keys())
def test_each_limit_denies_at_exactly_its_value_with_openai_headers(gateway, tier, project, estimate, passes,
                                                                    limit, scope):
    raw, key = make_api_key()
    fund(key.organization, "5")
    Project.objects.filter(pk=key.project_id).update(**project)
    with override_settings(CONSOLE_RATE_TIERS=tiers(**tier)):
        answers = [gateway.authorize(raw, estimate=estimate) for _ in range(passes + 2)]
        # Another project of the organization: blocked too when the limit is the organization's.
        other_raw, _ = make_api_key(project=ProjectFactory(organization=key.organization))
        other = gateway.authorize(other_raw, estimate=estimate)
    assert [a.status_code for a in answers] == [200] * passes + [429, 429]
    error = denial(answers[-1])
    assert (error["code"], error["limit"], error["scope"]) == ("rate_limited", limit, scope)
    assert 1 <= int(answers[-1]["Retry-After"]) <= (86_400 if limit == "tokens_per_day" else 120)
    for answer in (answers[0], answers[-1]):
        assert set(RATE_HEADERS) <= set(answer.headers)
    assert answers[-1]["X-RateLimit-Reset-Tokens"].endswith("s")
    assert other.status_code == (429 if scope == "organization" else 200)


@override_settings(CONSOLE_RATE_TIERS=tiers(rpm=10, tpm=50_000))
def test_header_values_follow_the_tighter_window(gateway):
    raw, key = make_api_key()
    fund(key.organization, "5")
    Project.objects.filter(pk=key.project_id).update(rpm_limit=4, tpm_limit=8000)
    response = gateway.authorize(raw, estimate=1500)
    assert (response["X-RateLimit-Limit-Requests"], response["X-RateLimit-Remaining-Requests"]) == ("4", "3")
    assert (response["X-RateLimit-Limit-Tokens"], response["X-RateLimit-Remaining-Tokens"]) == ("8000", "6500")
    Project.objects.filter(pk=key.project_id).update(rpm_limit=50)  # above the org's: capped
    assert gateway.authorize(raw, estimate=1)["X-RateLimit-Limit-Requests"] == "10"


@override_settings(CONSOLE_RATE_TIERS=tiers(concurrency=1))
def test_the_usage_report_frees_the_concurrency_slot(gateway, django_capture_on_commit_callbacks):
    model = PriceFactory().model
    raw, key = make_api_key()
    fund(key.organization, "5")
    first = gateway.authorize(raw)
    assert denial(gateway.authorize(raw))["limit"] == "concurrency"
    with django_capture_on_commit_callbacks(execute=True):
        report = gateway.usage([usage_event("c1", key, model, authorization_id=first.json()["authorization_id"])])
    assert report.json()["accepted"] == 1
    assert gateway.authorize(raw).status_code == 200


@override_settings(CONSOLE_RATE_TIERS=tiers(concurrency=1))
def test_release_frees_the_slot_by_header_or_body(gateway):
    raw, key = make_api_key()
    fund(key.organization, "5")
    post = gateway.client.post
    token = {"X-Gateway-Token": "test-gateway-token"}
    first = gateway.authorize(raw)
    released = post("/api/v1/gateway/release", headers={**token, "X-Authorization-Id": first["X-Authorization-Id"]})
    assert released.json() == {"released": True}
    second = gateway.authorize(raw)
    assert second.status_code == 200
    body = json.dumps({"authorization_id": second.json()["authorization_id"]})
    assert post("/api/v1/gateway/release", body, content_type="application/json", headers=token).status_code == 200
    assert post("/api/v1/gateway/release", body, content_type="application/json", headers=token).status_code == 200
    assert gateway.authorize(raw).status_code == 200
    forged = second["X-Authorization-Id"][:-1] + ("0" if second["X-Authorization-Id"][-1] != "0" else "1")
    answer = post("/api/v1/gateway/release", headers={**token, "X-Authorization-Id": forged})
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "unknown_authorization")
    missing = post("/api/v1/gateway/release", "{}", content_type="application/json", headers=token)
    assert (missing.status_code, missing.json()["error"]["code"]) == (400, "invalid_authorization_id")
    assert post("/api/v1/gateway/release", "{", content_type="application/json", headers=token).status_code == 400
    assert post("/api/v1/gateway/release", headers={"X-Authorization-Id": forged}).status_code == 401
    assert denial(gateway.authorize(raw))["limit"] == "concurrency"  # the forged release freed nothing


@pytest.mark.parametrize("body", [b"{", b"\xff\xfe", b"[" * 2000 + b"]" * 2000, b'[{"":' * 550 + b"1" + b"}]" * 550],
                         ids=["truncated", "not-utf8", "nested-arrays", "nested-mixed"])
def test_release_answers_a_malformed_body_as_usage_does(gateway, body):
    """The same 400 invalid_json as a usage body, never a 500 (nesting deeper than Python's recursion
    limit raised RecursionError here)."""
    answer = gateway.client.post("/api/v1/gateway/release", body, content_type="application/json",
                                 headers={"X-Gateway-Token": "test-gateway-token"})
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid_json")
    usage = gateway.usage(body=body)
    assert (usage.status_code, usage.json()["error"]["code"]) == (400, "invalid_json")


@override_settings(CONSOLE_RATE_TIERS=tiers(concurrency=1), CONSOLE_CONCURRENCY_LEASE_SECONDS=1)
def test_a_lease_nobody_releases_expires(gateway):
    raw, key = make_api_key()
    fund(key.organization, "5")
    assert gateway.authorize(raw).status_code == 200
    assert gateway.authorize(raw).status_code == 429
    time.sleep(1.1)
    assert gateway.authorize(raw).status_code == 200


@override_settings(CONSOLE_RATE_TIERS=tiers(tpd=10_000, tpm=10_000))
def test_usage_corrects_tokens_per_day_and_minute_of_the_authorized_call(gateway, django_capture_on_commit_callbacks):
    model = PriceFactory().model
    raw, key = make_api_key()
    fund(key.organization, "5")
    first = gateway.authorize(raw, estimate=9000)
    assert denial(gateway.authorize(raw, estimate=2000))["limit"] == "tokens_per_minute"
    with django_capture_on_commit_callbacks(execute=True):
        gateway.usage([usage_event("t1", key, model, input_tokens=500, output_tokens=500,
                                   authorization_id=first.json()["authorization_id"])])
    second = gateway.authorize(raw, estimate=9000)  # 1000 + 9000: the minute and the day are full again
    assert second["X-RateLimit-Remaining-Tokens"] == "0"
    assert denial(gateway.authorize(raw, estimate=100))["limit"] == "tokens_per_minute"


@pytest.mark.parametrize("limiter", ["redis", "in-process"])
def test_the_events_of_one_authorization_give_its_estimate_back_once(gateway, django_capture_on_commit_callbacks,
                                                                     settings, limiter):
    """Streamed chunks: three events name one authorization (two in a batch, one in the next). The
    estimate is given back once and each chunk's tokens count, so the windows hold what was used;
    giving it back per event handed an under-estimating caller 1800 tokens it never paid for."""
    if limiter == "in-process":
        settings.REDIS_URL = ""
    settings.CONSOLE_RATE_TIERS = tiers(tpm=10_000, tpd=10_000, concurrency=2)
    model = PriceFactory().model
    raw, key = make_api_key()
    fund(key.organization, "5")
    in_flight = gateway.authorize(raw, estimate=1000)  # another call, still holding its slot
    streamed = gateway.authorize(raw, estimate=1000).json()["authorization_id"]

    def chunk(n: int) -> dict:
        return usage_event(f"chunk-{n}", key, model, input_tokens=40, output_tokens=60, authorization_id=streamed)

    for batch in ([chunk(1), chunk(2)], [chunk(3)]):
        with django_capture_on_commit_callbacks(execute=True):
            assert gateway.usage(batch).json()["accepted"] == len(batch)
    # 1000 (the call in flight) + 3 x 100 (the chunks) + 100 (this call) of 10 000.
    after = gateway.authorize(raw, estimate=100)
    assert (after.status_code, after["X-RateLimit-Remaining-Tokens"]) == (200, "8600")
    # The first chunk freed the streamed call's slot; the others freed nobody else's.
    assert denial(gateway.authorize(raw, estimate=100))["limit"] == "concurrency"
    assert in_flight.status_code == 200


def test_a_top_up_or_a_staff_override_applies_to_the_next_call(gateway):
    raw, key = make_api_key()
    fund(key.organization, "5")
    with override_settings(CONSOLE_RATE_TIERS=tiers(rpm=2)):
        assert [gateway.authorize(raw).status_code for _ in range(3)] == [200, 200, 429]
        fund(key.organization, "1000")  # Tier1: 5000 RPM
        assert gateway.authorize(raw)["X-RateLimit-Limit-Requests"] == "5000"
        Organization.objects.filter(pk=key.organization_id).update(rate_tier_override="Tier0")
        assert denial(gateway.authorize(raw))["limit"] == "requests_per_minute"


@override_settings(CONSOLE_RATE_TIERS=tiers(rpm=1))
def test_an_invalid_authorization_id_is_rejected_and_a_foreign_one_corrects_nothing(gateway):
    model = PriceFactory().model
    _raw, key = make_api_key()
    fund(key.organization, "5")
    other_raw, other_key = make_api_key()
    fund(other_key.organization, "5")
    foreign = gateway.authorize(other_raw).json()["authorization_id"]
    answer = gateway.usage([usage_event("i1", key, model, authorization_id=7),
                            usage_event("i2", key, model, authorization_id=foreign)])
    assert answer.json()["rejected"] == [{"index": 0, "id": "i1", "error": "invalid_authorization_id"}]
    assert answer.json()["accepted"] == 1
    assert denial(gateway.authorize(other_raw))["limit"] == "requests_per_minute"


@override_settings(REDIS_URL="", CONSOLE_RATE_TIERS=tiers(rpm=2, concurrency=5))
def test_without_redis_the_in_process_limiter_enforces_them_too(gateway):
    raw, key = make_api_key()
    fund(key.organization, "5")
    assert [gateway.authorize(raw).status_code for _ in range(3)] == [200, 200, 429]
    assert denial(gateway.authorize(raw))["limit"] == "requests_per_minute"
