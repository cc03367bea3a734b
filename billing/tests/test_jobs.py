"""usage_aggregate (rollups) and usage_reconcile (ledger vs events), as beat runs them."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from billing.api import usage_report
from billing.models import (
    LedgerEntry,
    LedgerKind,
    UsageBatch,
    UsageEvent,
    UsageModelDailyRollup,
    UsageProjectDailyRollup,
    UsageRollup,
)
from billing.selectors.reconcile import usage_reconcile
from billing.services import rollups as rollup_service
from billing.services.rollups import usage_aggregate
from billing.tasks import usage_aggregate_task, usage_reconcile_task
from billing.tests.factories import PriceFactory, ProjectFactory, fund, make_api_key, usage_event

pytestmark = pytest.mark.django_db

HOUR = datetime(2026, 1, 1, 10, tzinfo=UTC)


@pytest.fixture
def setup(settings):
    settings.CONSOLE_USAGE_MAX_AGE_DAYS = 10_000
    PriceFactory(model="small", input_per_mtok=Decimal("1"), output_per_mtok=Decimal("2"))
    PriceFactory(model="large", input_per_mtok=Decimal("10"), output_per_mtok=Decimal("20"))
    _raw, key = make_api_key()
    _raw, key2 = make_api_key(project=ProjectFactory(organization=key.organization))
    fund(key.organization, "100")
    return key, key2


def rollups() -> dict[tuple[str, str, datetime], tuple[int, int, int, Decimal]]:
    return {
        (r.api_key.public_id, r.model, r.hour): (r.requests, r.input_tokens, r.output_tokens, r.cost)
        for r in UsageRollup.objects.select_related("api_key")
    }


def test_events_are_folded_per_key_model_and_hour(setup):
    key, key2 = setup
    usage_report([
        usage_event("a", key, "small", input_tokens=100, output_tokens=10, occurred_at=HOUR + timedelta(minutes=5)),
        usage_event("b", key, "small", input_tokens=200, output_tokens=20, occurred_at=HOUR + timedelta(minutes=59)),
        usage_event("c", key, "small", input_tokens=1, output_tokens=1, occurred_at=HOUR + timedelta(hours=1)),
        usage_event("d", key, "large", input_tokens=1000, output_tokens=0, occurred_at=HOUR),
        usage_event("e", key2, "small", input_tokens=5, output_tokens=5, occurred_at=HOUR),
    ])
    result = usage_aggregate()
    assert (result.batches, result.events, result.rollups) == (1, 5, 4)
    assert rollups() == {
        (key.public_id, "small", HOUR): (2, 300, 30, Decimal("0.000360")),
        (key.public_id, "small", HOUR + timedelta(hours=1)): (1, 1, 1, Decimal("0.000003")),
        (key.public_id, "large", HOUR): (1, 1000, 0, Decimal("0.010000")),
        (key2.public_id, "small", HOUR): (1, 5, 5, Decimal("0.000015")),
    }
    rollup = UsageRollup.objects.get(api_key=key2)
    assert (rollup.project_id, rollup.organization_id) == (key2.project_id, key2.organization_id)


def test_the_daily_levels_the_pages_read_hold_each_project_and_model_day(setup):
    key, key2 = setup
    next_day = HOUR + timedelta(days=1)
    usage_report([
        usage_event("a", key, "small", input_tokens=100, output_tokens=10, occurred_at=HOUR),
        usage_event("b", key, "large", input_tokens=1000, output_tokens=0, occurred_at=HOUR + timedelta(hours=3)),
        usage_event("c", key2, "small", input_tokens=5, output_tokens=5, occurred_at=HOUR),
        usage_event("d", key2, "small", input_tokens=1, output_tokens=1, occurred_at=next_day),
    ])
    usage_aggregate()
    usage_report([usage_event("e", key, "small", input_tokens=100, output_tokens=10, occurred_at=HOUR)])
    usage_aggregate()  # a later batch adds to the same rows
    by_project = {(r.project_id, r.day): (r.requests, r.input_tokens, r.output_tokens, r.cost)
                  for r in UsageProjectDailyRollup.objects.all()}
    assert by_project == {
        (key.project_id, HOUR.date()): (3, 1200, 20, Decimal("0.010240")),
        (key2.project_id, HOUR.date()): (1, 5, 5, Decimal("0.000015")),
        (key2.project_id, next_day.date()): (1, 1, 1, Decimal("0.000003")),
    }
    by_model = {(r.model, r.day): (r.requests, r.cost) for r in UsageModelDailyRollup.objects.all()}
    assert by_model == {
        ("small", HOUR.date()): (3, Decimal("0.000255")),
        ("large", HOUR.date()): (1, Decimal("0.010000")),
        ("small", next_day.date()): (1, Decimal("0.000003")),
    }
    assert {r.organization_id for r in UsageModelDailyRollup.objects.all()} == {key.organization_id}


def test_later_batches_add_to_existing_rollups_and_reruns_change_nothing(setup):
    key, _key2 = setup
    usage_report([usage_event("a", key, "small", occurred_at=HOUR)])
    usage_aggregate()
    usage_report([usage_event("b", key, "small", occurred_at=HOUR + timedelta(minutes=1)),
                         usage_event("a", key, "small", occurred_at=HOUR)])  # a: duplicate, not stored
    usage_aggregate()
    usage_aggregate()
    usage_aggregate_task.delay()
    assert rollups() == {(key.public_id, "small", HOUR): (2, 2000, 1000, Decimal("0.004"))}
    assert not UsageBatch.objects.filter(folded_at__isnull=True).exists()


def test_a_crash_mid_run_folds_nothing_and_the_next_run_folds_everything(setup):
    key, _key2 = setup
    usage_report([usage_event("a", key, "small", occurred_at=HOUR)])
    # Killed after the new rollups were written, before the batch was marked folded.
    with mock.patch("billing.services.rollups.timezone") as clock, pytest.raises(RuntimeError):
        clock.now.side_effect = RuntimeError("worker killed")
        usage_aggregate()
    assert not UsageRollup.objects.exists()
    usage_aggregate()
    assert rollups()[(key.public_id, "small", HOUR)][0] == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_never_fold_a_batch_twice(settings):
    settings.CONSOLE_USAGE_MAX_AGE_DAYS = 10_000
    PriceFactory(model="small")
    _raw, key = make_api_key()
    for batch in range(30):
        usage_report([usage_event(f"e{batch}-{i}", key, "small", occurred_at=HOUR + timedelta(minutes=i))
                             for i in range(20)])
    barrier = threading.Barrier(4)

    def run() -> None:
        try:
            barrier.wait()
            for _ in range(3):
                usage_aggregate(batches_per_step=3)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    usage_aggregate()  # whatever the skipped runs left
    assert UsageRollup.objects.aggregate(n=Sum("requests"))["n"] == UsageEvent.objects.count() == 600
    assert UsageRollup.objects.aggregate(c=Sum("cost"))["c"] == UsageEvent.objects.aggregate(c=Sum("cost"))["c"]


def test_a_run_that_finds_the_lock_taken_returns_at_once_and_folds_once_it_is_free(setup):
    """Another process holds the real advisory lock (a second PostgreSQL connection in its own
    transaction): this run folds nothing and says so; once the lock is released it folds."""
    key, _key2 = setup
    usage_report([usage_event("a", key, "small", occurred_at=HOUR)])
    held, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [rollup_service._AGGREGATE_LOCK_ID])
                held.set()
                release.wait(timeout=10)
        finally:
            connection.close()

    other = threading.Thread(target=hold_the_lock)
    other.start()
    try:
        assert held.wait(timeout=10)
        assert usage_aggregate().skipped
        assert not UsageRollup.objects.exists()
    finally:
        release.set()
        other.join()
    result = usage_aggregate()
    assert not result.skipped and result.events == 1
    assert UsageRollup.objects.get().requests == 1


def test_reconcile_finds_no_difference_when_ledger_and_events_agree(setup):
    key, key2 = setup
    day = HOUR.date()
    usage_report([usage_event(f"e{i}", key if i % 2 else key2, "small", occurred_at=HOUR) for i in range(7)])
    usage_report([usage_event("next-day", key, "large", occurred_at=HOUR + timedelta(days=1))])
    report = usage_reconcile(day=day)
    assert report.ok and report.organizations == 1


def test_reconcile_reports_each_difference(setup, caplog):
    key, _key2 = setup
    _raw, other = make_api_key()
    usage_report([usage_event("a", key, "small", occurred_at=HOUR),
                         usage_event("b", other, "small", occurred_at=HOUR)])
    LedgerEntry.objects.filter(organization=other.organization, kind=LedgerKind.USAGE).delete()
    report = usage_reconcile(day=HOUR.date())
    assert [(m.organization_id, m.ledger_usage, m.event_cost) for m in report.mismatches] == [
        (other.organization.public_id, Decimal("0"), Decimal("0.002")),
    ]
    assert report.mismatches[0].difference == Decimal("-0.002")


def test_reconcile_task_defaults_to_yesterday(setup):
    key, _key2 = setup
    yesterday = timezone.now() - timedelta(days=1)
    usage_report([usage_event("a", key, "small", occurred_at=yesterday)])
    with mock.patch("billing.tasks.usage_reconcile", wraps=usage_reconcile) as spy:
        usage_reconcile_task.delay()
    assert spy.call_args.kwargs["day"] == yesterday.astimezone(UTC).date()
