"""POST /api/v1/gateway/usage: validation per event, idempotency, costs, ledger and spend counters."""

from __future__ import annotations

import json
from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.test import override_settings
from django.utils import timezone

from billing.models import BillingAccount, LedgerEntry, LedgerKind, ProjectSpend, UsageEvent, UsageRollup
from billing.selectors.reconcile import usage_reconcile
from billing.services.rollups import usage_aggregate
from billing.tests.factories import PriceFactory, fund, make_api_key, usage_event
from projects.models import APIKey

pytestmark = pytest.mark.django_db


@pytest.fixture
def price():
    return PriceFactory(model="gpt-test", input_per_mtok=Decimal("1.00"), output_per_mtok=Decimal("2.00"))


@pytest.fixture
def key(price):
    _raw, key = make_api_key()
    fund(key.organization, "10.00")
    return key


def balance(org) -> Decimal:
    return BillingAccount.objects.get(organization=org).balance


def test_batch_is_stored_costed_charged_and_counted(gateway, key):
    now = timezone.now()
    events = [usage_event(f"evt-{i}", key, "gpt-test", input_tokens=1000, output_tokens=500, occurred_at=now)
              for i in range(3)]
    response = gateway.usage(events)
    assert response.status_code == 200
    assert response.json() == {"accepted": 3, "duplicates": 0, "rejected": []}
    # 1000 x $1/M + 500 x $2/M = $0.002 a call
    assert list(UsageEvent.objects.order_by("event_id").values_list("cost", flat=True)) == [Decimal("0.002")] * 3
    charge = LedgerEntry.objects.get(organization=key.organization, kind=LedgerKind.USAGE)
    assert charge.amount == Decimal("-0.006")
    assert charge.balance_after == Decimal("9.994") == balance(key.organization)
    assert charge.memo.startswith("3 API calls")
    spend = dict(ProjectSpend.objects.filter(project=key.project).values_list("period", "spent"))
    assert spend == {"day": Decimal("0.006"), "month": Decimal("0.006")}


def test_resent_events_are_duplicates_and_never_charged_twice(gateway, key):
    events = [usage_event(f"evt-{i}", key, "gpt-test") for i in range(2)]
    assert gateway.usage(events).json()["accepted"] == 2
    again = gateway.usage([*events, usage_event("evt-new", key, "gpt-test")])
    assert again.json() == {"accepted": 1, "duplicates": 2, "rejected": []}
    assert UsageEvent.objects.count() == 3
    assert balance(key.organization) == Decimal("10") - 3 * Decimal("0.002")
    assert LedgerEntry.objects.filter(kind=LedgerKind.USAGE).count() == 2


def test_same_id_with_other_content_is_a_conflicting_duplicate(gateway, key):
    when = timezone.now()
    gateway.usage([usage_event("evt-1", key, "gpt-test", input_tokens=10, occurred_at=when)])
    response = gateway.usage(
        [
            usage_event("evt-1", key, "gpt-test", input_tokens=11, occurred_at=when),  # stored with 10
            usage_event("evt-2", key, "gpt-test", occurred_at=when),
            usage_event("evt-2", key, "gpt-test", occurred_at=when),  # same content twice: a duplicate
            usage_event("evt-2", key, "gpt-test", output_tokens=1, occurred_at=when),  # same id, other content
        ]
    )
    assert response.json() == {
        "accepted": 1,
        "duplicates": 1,
        "rejected": [
            {"index": 0, "id": "evt-1", "error": "conflicting_duplicate"},
            {"index": 3, "id": "evt-2", "error": "conflicting_duplicate"},
        ],
    }
    assert UsageEvent.objects.get(event_id="evt-1").input_tokens == 10


def test_each_bad_event_is_rejected_with_its_reason_and_the_others_are_stored(gateway, key):
    PriceFactory(model="future-model", effective_from=timezone.now() + timedelta(days=1))
    _raw, other_org_key = make_api_key()
    now = timezone.now()
    good = usage_event("good-1", key, "gpt-test")
    bad: list[tuple[object, str]] = [
        ("not an object", "invalid_event"),
        ({**good, "id": ""}, "invalid_id"),
        ({k: v for k, v in good.items() if k != "id"}, "invalid_id"),
        ({**good, "id": "x" * 129}, "invalid_id"),
        ({**good, "id": "e-unknown-key", "key_id": "key_doesnotexist"}, "unknown_key"),
        ({**good, "id": "e-no-model", "model": ""}, "unknown_model"),
        ({**good, "id": "e-unpriced", "model": "no-such-model"}, "unknown_model"),
        ({**good, "id": "e-not-yet-priced", "model": "future-model"}, "unknown_model"),
        ({**good, "id": "e-negative", "input_tokens": -1}, "invalid_tokens"),
        ({**good, "id": "e-string-tokens", "output_tokens": "12"}, "invalid_tokens"),
        ({**good, "id": "e-float-tokens", "output_tokens": 1.5}, "invalid_tokens"),
        ({**good, "id": "e-bool-tokens", "input_tokens": True}, "invalid_tokens"),
        ({**good, "id": "e-missing-tokens", "input_tokens": None}, "invalid_tokens"),
        ({**good, "id": "e-bad-time", "occurred_at": "yesterday"}, "invalid_timestamp"),
        ({**good, "id": "e-impossible-time", "occurred_at": "2026-13-45T10:00:00Z"}, "invalid_timestamp"),
        ({**good, "id": "e-no-time", "occurred_at": None}, "invalid_timestamp"),
        ({**good, "id": "e-future", "occurred_at": (now + timedelta(hours=1)).isoformat()}, "timestamp_in_future"),
        ({**good, "id": "e-ancient", "occurred_at": (now - timedelta(days=400)).isoformat()}, "timestamp_too_old"),
    ]
    events = [good, *[event for event, _ in bad], usage_event("good-2", other_org_key, "gpt-test")]
    response = gateway.usage(events)
    assert response.status_code == 200
    body = response.json()
    def id_of(event: object) -> str | None:
        value = event.get("id") if isinstance(event, dict) else None
        return value if isinstance(value, str) else None

    expected = [{"index": i + 1, "id": id_of(event), "error": reason} for i, (event, reason) in enumerate(bad)]
    assert body["rejected"] == expected
    assert body["accepted"] == 2
    assert set(UsageEvent.objects.values_list("event_id", flat=True)) == {"good-1", "good-2"}


def test_small_clock_skew_is_accepted_and_naive_timestamps_are_utc(gateway, key):
    ahead = timezone.now() + timedelta(seconds=30)
    naive = timezone.now().astimezone(UTC).replace(tzinfo=None) - timedelta(minutes=5)
    response = gateway.usage([
        usage_event("skewed", key, "gpt-test", occurred_at=ahead),
        usage_event("naive", key, "gpt-test", occurred_at=naive.isoformat()),
    ])
    assert response.json()["accepted"] == 2
    assert UsageEvent.objects.get(event_id="naive").occurred_at == naive.replace(tzinfo=UTC)


def test_cost_uses_the_price_in_force_when_the_call_happened(gateway, key):
    now = timezone.now()
    PriceFactory(model="gpt-test", input_per_mtok=Decimal("10"), output_per_mtok=Decimal("20"),
                 effective_from=now - timedelta(hours=1))
    gateway.usage([
        usage_event("before", key, "gpt-test", occurred_at=now - timedelta(hours=2)),
        usage_event("after", key, "gpt-test", occurred_at=now - timedelta(minutes=30)),
    ])
    costs = dict(UsageEvent.objects.values_list("event_id", "cost"))
    assert costs == {"before": Decimal("0.002"), "after": Decimal("0.02")}


def test_event_costs_are_exact_and_the_ledger_rounds_the_day_up_once(gateway, key):
    PriceFactory(model="odd", input_per_mtok=Decimal("1.234567"), output_per_mtok=Decimal("3.333333"))
    # (7 x 1.234567 + 3 x 3.333333) / 1e6 = 0.000018641968 exactly; (1 x 0.5) / 1e6 = 0.0000005
    PriceFactory(model="half", input_per_mtok=Decimal("0.5"), output_per_mtok=Decimal("0"))
    gateway.usage([
        usage_event("odd", key, "odd", input_tokens=7, output_tokens=3),
        usage_event("half", key, "half", input_tokens=1, output_tokens=0),
    ])
    assert dict(UsageEvent.objects.values_list("event_id", "cost")) == {
        "odd": Decimal("0.000018641968"), "half": Decimal("0.0000005"),
    }
    # 0.000019141968 rounded up once (not 0.000019 + 0.000001 rounded per event).
    assert balance(key.organization) == Decimal("10") - Decimal("0.000020")


@pytest.mark.parametrize("batches", [1, 100], ids=["one-batch", "one-call-per-batch"])
def test_tiny_calls_are_charged_what_they_cost_in_total(gateway, key, batches):
    """1000 calls of 24 tokens at $0.02/M cost $0.00048: each event used to be rounded to
    $0.000000 before summing, so they were free. Now the ledger takes the exact sum, rounded up
    once per day: never less than the calls cost, never 1e-6 or more above."""
    PriceFactory(model="tiny", input_per_mtok=Decimal("0.02"), output_per_mtok=Decimal("0.02"))
    calls = 1000 if batches == 1 else 100
    events = [usage_event(f"tiny-{i}", key, "tiny", input_tokens=20, output_tokens=4) for i in range(calls)]
    size = calls // batches
    for start in range(0, calls, size):
        assert gateway.usage(events[start:start + size]).json()["accepted"] == size
    exact = Decimal("0.00000048") * calls
    charged = -sum(LedgerEntry.objects.filter(kind=LedgerKind.USAGE).values_list("amount", flat=True))
    assert charged == exact  # 0.00048 and 0.000048: whole micro-units here, so no rounding at all
    assert balance(key.organization) == Decimal("10") - exact
    assert usage_reconcile(day=timezone.now().astimezone(UTC).date()).ok
    usage_aggregate()
    assert UsageRollup.objects.aggregate(c=Sum("cost"))["c"] == exact


def test_no_call_is_free_and_the_overcharge_stays_under_a_micro_unit(gateway, key):
    PriceFactory(model="tiny", input_per_mtok=Decimal("0.02"), output_per_mtok=Decimal("0.02"))
    for i in range(7):  # 7 x 0.00000048 = 0.00000336 → 0.000004 in all, whatever the batching
        gateway.usage([usage_event(f"tiny-{i}", key, "tiny", input_tokens=20, output_tokens=4)])
        charged = -sum(LedgerEntry.objects.filter(kind=LedgerKind.USAGE).values_list("amount", flat=True))
        exact = Decimal("0.00000048") * (i + 1)
        assert exact <= charged < exact + Decimal("0.000001")
    assert charged == Decimal("0.000004")
    assert usage_reconcile(day=timezone.now().astimezone(UTC).date()).ok


def test_one_ledger_charge_per_organization_per_batch(gateway, key):
    _raw, second_key_same_project = make_api_key(project=key.project)
    _raw, key_other_org = make_api_key()
    events = [usage_event(f"a-{i}", key, "gpt-test") for i in range(3)]
    events += [usage_event(f"b-{i}", second_key_same_project, "gpt-test") for i in range(2)]
    events += [usage_event("c-0", key_other_org, "gpt-test")]
    assert gateway.usage(events).json()["accepted"] == 6
    charges = dict(
        LedgerEntry.objects.filter(kind=LedgerKind.USAGE).values_list("organization_id", "amount")
    )
    assert charges == {key.organization_id: Decimal("-0.010"), key_other_org.organization_id: Decimal("-0.002")}
    # Never topped up: the charge drives that organization's balance below zero (authorize then denies it).
    assert balance(key_other_org.organization) == Decimal("-0.002")


def test_events_on_two_days_are_charged_to_each_day(gateway, key):
    today = timezone.now()
    yesterday = today - timedelta(days=1)
    gateway.usage([usage_event("t", key, "gpt-test", occurred_at=today),
                   usage_event("y", key, "gpt-test", occurred_at=yesterday)])
    dates = set(LedgerEntry.objects.filter(kind=LedgerKind.USAGE).values_list("usage_date", flat=True))
    assert dates == {today.astimezone(UTC).date(), yesterday.astimezone(UTC).date()}
    days = ProjectSpend.objects.filter(project=key.project, period="day").count()
    assert days == 2


def test_usage_of_a_key_revoked_since_the_call_is_still_recorded(gateway, key):
    APIKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
    assert gateway.usage([usage_event("late", key, "gpt-test")]).json()["accepted"] == 1


def test_an_empty_batch_is_fine(gateway):
    assert gateway.usage([]).json() == {"accepted": 0, "duplicates": 0, "rejected": []}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"\xff\xfe", 400, "invalid_json"),
        (b"[]", 400, "invalid_body"),
        (b'{"event": []}', 400, "invalid_body"),
        (b'{"events": {"id": "x"}}', 400, "invalid_body"),
        (json.dumps({"events": [{}] * 1001}).encode(), 400, "too_many_events"),
        (b'{"events": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}", 400, "invalid_json"),
        (b'{"events": [{"id": ' + b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"}]}", 400, "invalid_json"),
        (b'{"events": [{"input_tokens": ' + b"9" * 5000 + b"}]}", 400, "invalid_json"),
    ],
    ids=["broken-json", "not-utf8", "a-list", "no-events", "events-not-a-list", "1001-events",
         "nested-arrays", "nested-objects", "5000-digit-number"],
)
def test_malformed_bodies_get_a_json_error_and_change_nothing(gateway, key, body, status, code):
    response = gateway.usage(body=body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    assert not UsageEvent.objects.exists()


@override_settings(CONSOLE_USAGE_MAX_BODY_BYTES=10_000)
def test_a_body_over_the_limit_is_413(gateway, key):
    events = [usage_event(f"evt-{i}", key, "gpt-test") for i in range(100)]
    response = gateway.usage(events)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert not UsageEvent.objects.exists()


@pytest.mark.parametrize("token", [None, "", "wrong-token", "test-gateway-token "])
def test_usage_without_the_gateway_token_is_401_and_stores_nothing(gateway, key, token):
    response = gateway.usage([usage_event("evt", key, "gpt-test")], token=token)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_gateway_token"
    assert not UsageEvent.objects.exists()


def test_usage_only_accepts_post(gateway):
    response = gateway.client.get("/api/v1/gateway/usage", headers={"X-Gateway-Token": "test-gateway-token"})
    assert response.status_code == 405
