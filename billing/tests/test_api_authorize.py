"""GET|POST /api/v1/gateway/authorize: every answer of the contract, in the contract's order."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import OperationalError, connection
from django.test import override_settings
from django.utils import timezone

from billing.models import ProjectSpend
from billing.tests.factories import PriceFactory, ProjectFactory, fund, make_api_key, usage_event
from projects.keys import generate_raw_key
from projects.models import APIKey, Project

pytestmark = pytest.mark.django_db

SMALL_TIERS = [
    # Room for requests: these tests are about tokens (billing/tests/test_rate_limits.py: the others).
    {"name": "Tier0", "min_topup": Decimal("0"), "concurrency": 100, "rpm": 100, "tpm": 5000, "tpd": None},
    {"name": "Tier1", "min_topup": Decimal("1000"), "concurrency": 100, "rpm": 100, "tpm": 50_000, "tpd": None},
]


@pytest.fixture(autouse=True, params=["single-query", "portable-orm"])
def gateway_path(request, monkeypatch) -> str:
    """Every test runs on PostgreSQL's one-statement path and on the ORM path SQLite uses."""
    if request.param == "portable-orm":
        monkeypatch.setattr("billing.selectors.gateway.FAST_PATH_VENDORS", set())
    return request.param


@pytest.fixture
def funded():
    """A funded organization's project and a key in it: (raw key, APIKey)."""
    raw, key = make_api_key()
    fund(key.organization, "10.00")
    return raw, key


def error_of(response) -> tuple[int, str]:
    body = response.json()
    # The same JSON travels in a header for nginx auth_request, which drops bodies.
    assert json.loads(response["X-Gateway-Error"]) == body
    assert body["error"]["message"]
    return response.status_code, body["error"]["code"]


def spend(project: Project, period: str, amount: str) -> None:
    today = timezone.now().date()
    start = today if period == "day" else today.replace(day=1)
    ProjectSpend.objects.create(project=project, period=period, period_start=start, spent=Decimal(amount))


@pytest.mark.parametrize("method", ["get", "post"])
def test_an_allowed_call_gets_the_ids_and_rate_limit_headers(gateway, funded, method):
    raw, key = funded
    Project.objects.filter(pk=key.project_id).update(tpm_limit=20_000)
    response = gateway.authorize(raw, estimate=1500, method=method)
    assert response.status_code == 200
    ids = {"organization_id": key.organization.public_id, "project_id": key.project.public_id,
           "key_id": key.public_id}
    body = response.json()
    assert body.pop("authorization_id") == response["X-Authorization-Id"]
    assert body == ids
    assert response["X-Organization-Id"] == ids["organization_id"]
    assert response["X-Project-Id"] == ids["project_id"]
    assert response["X-Key-Id"] == ids["key_id"]
    assert response["X-RateLimit-Limit-Tokens"] == "20000"
    assert response["X-RateLimit-Remaining-Tokens"] == "18500"
    assert APIKey.objects.get(pk=key.pk).last_used_at is not None


def test_the_hot_path_makes_few_queries_and_no_write_after_the_first_call(gateway, funded, gateway_path,
                                                                         django_assert_num_queries):
    raw, _key = funded
    # One statement (key, project, org, balance, spend) or two (key+project+org; balance+spend),
    # plus last_used_at at most once a minute.
    reads = 1 if gateway_path == "single-query" else 2
    with django_assert_num_queries(reads + 1):
        assert gateway.authorize(raw).status_code == 200
    with django_assert_num_queries(reads):
        assert gateway.authorize(raw).status_code == 200


KEY_PROBLEMS = {
    "missing-header": lambda raw: None,
    "not-bearer": lambda raw: f"Basic {raw}",
    "empty-bearer": lambda raw: "Bearer ",
    "malformed": lambda raw: f"Bearer {raw[:-1]}{'A' if raw[-1] != 'A' else 'B'}",
    "unknown": lambda raw: f"Bearer {generate_raw_key()}",
}


@pytest.mark.parametrize("problem", KEY_PROBLEMS.values(), ids=KEY_PROBLEMS.keys())
def test_bad_keys_get_401_invalid_api_key(gateway, funded, problem):
    raw, _key = funded
    headers = {"X-Gateway-Token": "test-gateway-token"}
    authorization = problem(raw)
    if authorization is not None:
        headers["Authorization"] = authorization
    response = gateway.client.get("/api/v1/gateway/authorize", headers=headers)
    assert error_of(response) == (401, "invalid_api_key")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"revoked_at": timezone.now()}, "revoked"),
        ({"expires_at": timezone.now() - timedelta(seconds=1)}, "expired"),
    ],
)
def test_revoked_and_expired_keys_get_401(gateway, funded, change, message):
    raw, key = funded
    APIKey.objects.filter(pk=key.pk).update(**change)
    response = gateway.authorize(raw)
    assert error_of(response) == (401, "invalid_api_key")
    assert message in response.json()["error"]["message"]


def test_a_revoked_key_is_denied_on_the_very_next_call(gateway, funded):
    raw, key = funded
    assert gateway.authorize(raw).status_code == 200
    APIKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
    assert gateway.authorize(raw).status_code == 401


def test_an_archived_project_gets_403(gateway, funded):
    raw, key = funded
    Project.objects.filter(pk=key.project_id).update(archived_at=timezone.now())
    assert error_of(gateway.authorize(raw)) == (403, "project_archived")


def test_a_revoked_key_of_an_archived_project_is_401_first(gateway, funded):
    raw, key = funded
    Project.objects.filter(pk=key.project_id).update(archived_at=timezone.now())
    APIKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
    assert error_of(gateway.authorize(raw)) == (401, "invalid_api_key")


def test_an_organization_that_never_topped_up_gets_insufficient_balance(gateway):
    raw, _key = make_api_key()
    assert error_of(gateway.authorize(raw)) == (403, "insufficient_balance")


def test_balance_used_up_by_usage_gets_insufficient_balance(gateway, funded):
    raw, key = funded
    PriceFactory(model="m", input_per_mtok=Decimal("10000"), output_per_mtok=Decimal("0"))
    gateway.usage([usage_event("big", key, "m", input_tokens=1000, output_tokens=0)])  # exactly $10
    assert error_of(gateway.authorize(raw)) == (403, "insufficient_balance")
    fund(key.organization, "0.01")
    assert gateway.authorize(raw).status_code == 200


def test_daily_budget_reached_gets_403_and_is_checked_before_the_monthly(gateway, funded):
    raw, key = funded
    Project.objects.filter(pk=key.project_id).update(daily_budget=Decimal("1.00"), monthly_budget=Decimal("1.00"))
    spend(key.project, "day", "0.999999")
    spend(key.project, "month", "0.999999")
    assert gateway.authorize(raw).status_code == 200
    ProjectSpend.objects.filter(project=key.project).update(spent=Decimal("1.00"))
    status, code = error_of(gateway.authorize(raw))
    assert (status, code) == (403, "daily_budget_exceeded")


def test_monthly_budget_reached_gets_403(gateway, funded):
    raw, key = funded
    Project.objects.filter(pk=key.project_id).update(daily_budget=Decimal("5"), monthly_budget=Decimal("2"))
    spend(key.project, "month", "2.50")
    response = gateway.authorize(raw)
    assert error_of(response) == (403, "monthly_budget_exceeded")
    assert "$2.00" in response.json()["error"]["message"]


def test_balance_is_checked_before_budgets(gateway):
    raw, key = make_api_key()
    Project.objects.filter(pk=key.project_id).update(daily_budget=Decimal("0"))
    assert error_of(gateway.authorize(raw)) == (403, "insufficient_balance")


def test_spend_of_another_project_or_day_does_not_count(gateway, funded):
    raw, key = funded
    Project.objects.filter(pk=key.project_id).update(daily_budget=Decimal("1"))
    other = ProjectFactory(organization=key.organization)
    spend(other, "day", "5")
    ProjectSpend.objects.create(project=key.project, period="day",
                                period_start=timezone.now().date() - timedelta(days=1), spent=Decimal("5"))
    assert gateway.authorize(raw).status_code == 200


@override_settings(CONSOLE_RATE_TIERS=SMALL_TIERS)
def test_project_tpm_full_gets_429_with_retry_after(gateway, funded):
    raw, key = funded
    Project.objects.filter(pk=key.project_id).update(tpm_limit=3000)
    for _ in range(3):
        assert gateway.authorize(raw, estimate=1000).status_code == 200
    response = gateway.authorize(raw, estimate=1000)
    assert error_of(response) == (429, "rate_limited")
    assert 1 <= int(response["Retry-After"]) <= 120  # the minute slides out during the next one
    assert response["X-RateLimit-Remaining-Tokens"] == "0"
    assert "project" in response.json()["error"]["message"]
    assert (response.json()["error"]["limit"], response.json()["error"]["scope"]) == ("tokens_per_minute", "project")


@override_settings(CONSOLE_RATE_TIERS=SMALL_TIERS, CONSOLE_MIN_ESTIMATED_TOKENS=100)
def test_an_estimate_of_zero_still_counts_the_minimum(gateway, funded):
    """Issue 11, defect 11: `X-Estimated-Tokens: 0` used to pass a full TPM window."""
    raw, key = funded
    Project.objects.filter(pk=key.project_id).update(tpm_limit=1000)
    statuses = [gateway.authorize(raw, estimate=0).status_code for _ in range(11)]
    assert statuses == [200] * 10 + [429]


@override_settings(CONSOLE_RATE_TIERS=SMALL_TIERS)
def test_projects_share_the_organization_tpm(gateway, funded):
    raw, key = funded
    raw_b, _key_b = make_api_key(project=ProjectFactory(organization=key.organization))
    assert gateway.authorize(raw, estimate=4000).status_code == 200
    assert gateway.authorize(raw_b, estimate=1000).status_code == 200
    response = gateway.authorize(raw_b, estimate=1)
    assert error_of(response) == (429, "rate_limited")
    assert "organization" in response.json()["error"]["message"]


@override_settings(CONSOLE_RATE_TIERS=SMALL_TIERS)
def test_a_project_tpm_above_the_organization_tpm_is_capped(gateway, funded):
    raw, key = funded
    Project.objects.filter(pk=key.project_id).update(tpm_limit=1_000_000)
    response = gateway.authorize(raw, estimate=10)
    assert response["X-RateLimit-Limit-Tokens"] == "5000"


@override_settings(CONSOLE_RATE_TIERS=SMALL_TIERS)
def test_top_ups_raise_the_rate_tier(gateway, funded):
    raw, key = funded
    assert gateway.authorize(raw, estimate=10)["X-RateLimit-Limit-Tokens"] == "5000"
    fund(key.organization, "1000")
    assert gateway.authorize(raw, estimate=10)["X-RateLimit-Limit-Tokens"] == "50000"


@override_settings(CONSOLE_RATE_TIERS=SMALL_TIERS, CONSOLE_DEFAULT_ESTIMATED_TOKENS=2500)
def test_without_an_estimate_the_default_is_counted(gateway, funded):
    raw, _key = funded
    assert gateway.authorize(raw)["X-RateLimit-Remaining-Tokens"] == "2500"


@override_settings(CONSOLE_RATE_TIERS=SMALL_TIERS)
def test_denied_calls_consume_no_tokens(gateway, funded):
    raw, key = funded
    Project.objects.filter(pk=key.project_id).update(daily_budget=Decimal("0"))
    for _ in range(3):
        gateway.authorize(raw, estimate=4000)
    Project.objects.filter(pk=key.project_id).update(daily_budget=None)
    assert gateway.authorize(raw, estimate=4000).status_code == 200


@override_settings(CONSOLE_RATE_TIERS=SMALL_TIERS)
def test_actual_tokens_reported_by_usage_correct_the_window(gateway, funded, price_model,
                                                            django_capture_on_commit_callbacks):
    raw, key = funded
    assert gateway.authorize(raw, estimate=5000).status_code == 200
    assert gateway.authorize(raw, estimate=100).status_code == 429
    with django_capture_on_commit_callbacks(execute=True):
        gateway.usage([usage_event("e1", key, price_model, input_tokens=300, output_tokens=200,
                                   estimated_tokens=5000)])
    response = gateway.authorize(raw, estimate=4500)
    assert response.status_code == 200
    assert response["X-RateLimit-Remaining-Tokens"] == "0"


@override_settings(CONSOLE_RATE_TIERS=SMALL_TIERS)
def test_an_under_estimate_gains_at_most_one_call(gateway, funded, price_model, django_capture_on_commit_callbacks):
    """Issue 11, defect 11: a caller claiming 100 tokens that uses 4000 is corrected on usage arrival."""
    raw, key = funded
    first = gateway.authorize(raw, estimate=100)
    assert first.status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        gateway.usage([usage_event("u1", key, price_model, input_tokens=4000, output_tokens=0,
                                   authorization_id=first.json()["authorization_id"])])
    assert gateway.authorize(raw, estimate=100).status_code == 200  # 4100 of 5000
    assert error_of(gateway.authorize(raw, estimate=1000)) == (429, "rate_limited")


@pytest.fixture
def price_model() -> str:
    return PriceFactory().model


@pytest.mark.parametrize("token", [None, "", "nope", "TEST-GATEWAY-TOKEN"])
def test_a_missing_or_wrong_gateway_token_is_401(gateway, funded, token):
    raw, _key = funded
    response = gateway.authorize(raw, token=token)
    assert error_of(response) == (401, "invalid_gateway_token")


@override_settings(CONSOLE_GATEWAY_TOKENS=["old-token", "new-token"])
def test_gateway_tokens_can_be_rotated(gateway, funded):
    raw, _key = funded
    assert gateway.authorize(raw, token="old-token").status_code == 200
    assert gateway.authorize(raw, token="new-token").status_code == 200
    assert gateway.authorize(raw, token="test-gateway-token").status_code == 401


@override_settings(CONSOLE_GATEWAY_TOKENS=[])
def test_with_no_gateway_token_configured_nothing_is_authorized(gateway, funded):
    raw, _key = funded
    assert gateway.authorize(raw, token="").status_code == 401


@pytest.mark.parametrize("estimate", ["-1", "lots", "1.5", str(10**10)])
def test_a_bad_estimate_is_400(gateway, funded, estimate):
    raw, _key = funded
    assert error_of(gateway.authorize(raw, estimate=estimate)) == (400, "invalid_estimated_tokens")


def test_the_database_unreachable_is_503_and_nothing_is_authorized(gateway, funded):
    raw, _key = funded

    def unreachable(execute, sql, params, many, context):
        raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")

    with connection.execute_wrapper(unreachable):
        response = gateway.authorize(raw)
        usage = gateway.usage([usage_event("x", "key_x", "m")])
    assert error_of(response) == (503, "service_unavailable")
    assert usage.status_code == 503


def test_redis_unreachable_fails_open_and_readyz_counts_it(gateway, funded, client):
    raw, _key = funded
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        before = client.get("/readyz").json()["rate_limiter"]["failures"]
        response = gateway.authorize(raw, estimate=10**8)  # would be far over any TPM
        assert response.status_code == 200
        ready = client.get("/readyz")
    assert ready.status_code == 200  # the console still serves: only throughput limits are off
    assert ready.json()["checks"]["rate_limiter"].startswith("error")
    assert ready.json()["rate_limiter"]["failures"] == before + 1
