"""Usage events on PostgreSQL: monthly partitions created ahead and on demand (the default
partition), idempotency across partition boundaries, retention that drops only what is folded
and reconciled."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.models import Sum

from billing.api import usage_report
from billing.models import LedgerEntry, LedgerKind, UsageDailyRollup, UsageEvent, UsageEventKey, UsageRollup
from billing.services.partitions import (
    DEFAULT_PARTITION,
    partition_name,
    usage_keys_prune,
    usage_partitions,
    usage_partitions_ensure,
    usage_retention_apply,
)
from billing.services.rollups import usage_aggregate
from billing.tests.factories import PriceFactory, fund, make_api_key, usage_event

pytestmark = pytest.mark.django_db


def rows_in(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 -- test's own identifiers
        return int(cursor.fetchone()[0])


def table_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        return bool(cursor.fetchone()[0])


def charged(org_id: int) -> Decimal:
    total = LedgerEntry.objects.filter(organization_id=org_id, kind=LedgerKind.USAGE).aggregate(t=Sum("amount"))["t"]
    return -(total or Decimal(0))


@pytest.fixture
def key(settings):
    settings.CONSOLE_USAGE_MAX_AGE_DAYS = 10_000  # the tests send events of months long gone
    PriceFactory(model="m", input_per_mtok=Decimal("1"), output_per_mtok=Decimal("2"))
    _raw, key = make_api_key()
    fund(key.organization, "100")
    return key


def test_partitions_are_created_ahead_and_a_second_run_creates_none(settings):
    settings.CONSOLE_USAGE_PARTITIONS_AHEAD = 2
    now = datetime(2031, 5, 10, tzinfo=UTC)

    result = usage_partitions_ensure(now=now)

    # From the oldest month an event may be accepted for (30 days back: April) to two months ahead.
    expected = [partition_name(date(2031, m, 1)) for m in (4, 5, 6, 7)]
    assert result.created == expected
    assert [p.name for p in usage_partitions() if p.month.year == 2031] == expected
    assert usage_partitions_ensure(now=now).created == []


def test_an_event_without_its_partition_is_kept_in_the_default_one_then_moved_and_never_charged_twice(key):
    june = datetime(2025, 6, 15, 12, tzinfo=UTC)
    assert not table_exists(partition_name(date(2025, 6, 1)))
    event = usage_event("e-1", key, "m", input_tokens=1000, output_tokens=0, occurred_at=june)

    assert usage_report([event]).accepted == 1
    assert rows_in(DEFAULT_PARTITION) == 1  # not lost: the default partition holds it

    result = usage_partitions_ensure(now=june)

    assert partition_name(date(2025, 6, 1)) in result.created and result.moved_rows == 1
    assert rows_in(DEFAULT_PARTITION) == 0
    assert rows_in(partition_name(date(2025, 6, 1))) == 1
    # The same event again, now that it lives in another partition: a duplicate, not a charge.
    again = usage_report([event])
    assert (again.accepted, again.duplicates) == (0, 1)
    assert UsageEvent.objects.filter(event_id="e-1").count() == 1
    assert charged(key.organization_id) == Decimal("0.001")


def test_resends_across_a_month_boundary_are_duplicates_or_conflicts_never_new_charges(key):
    usage_partitions_ensure(now=datetime(2025, 12, 15, tzinfo=UTC))
    last_moment = datetime(2025, 11, 30, 23, 59, 59, 999_999, tzinfo=UTC)
    first_moment = datetime(2025, 12, 1, tzinfo=UTC)
    november = usage_event("edge", key, "m", input_tokens=1000, output_tokens=0, occurred_at=last_moment)
    usage_report([november])

    same = usage_report([november])
    moved = usage_report([{**november, "occurred_at": first_moment.isoformat()}])  # would land in December

    assert (same.accepted, same.duplicates) == (0, 1)
    assert moved.accepted == 0
    assert [(r.id, r.error) for r in moved.rejected] == [("edge", "conflicting_duplicate")]
    assert rows_in(partition_name(date(2025, 11, 1))) == 1
    assert rows_in(partition_name(date(2025, 12, 1))) == 0
    assert charged(key.organization_id) == Decimal("0.001")


@pytest.mark.django_db(transaction=True)
def test_concurrent_resends_straddling_a_boundary_are_stored_and_charged_once(key):
    created = usage_partitions_ensure(now=datetime(2025, 12, 15, tzinfo=UTC)).created
    moments = [datetime(2025, 11, 30, 23, 59, 59, tzinfo=UTC), datetime(2025, 12, 1, 0, 0, 1, tzinfo=UTC)]
    barrier = threading.Barrier(8)
    outcomes: list[tuple[int, int, int]] = []

    def send(n: int) -> None:
        try:
            barrier.wait()
            events = [usage_event(f"c-{i}", key, "m", input_tokens=1000, output_tokens=0,
                                  occurred_at=moments[(i + n) % 2]) for i in range(50)]
            result = usage_report(events)
            outcomes.append((result.accepted, result.duplicates, len(result.rejected)))
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(accepted for accepted, _d, _r in outcomes) == 50
    assert sum(d + r for _a, d, r in outcomes) == 7 * 50  # every other copy: duplicate or conflict
    assert UsageEvent.objects.count() == 50
    assert charged(key.organization_id) == Decimal("0.05")
    with connection.cursor() as cursor:  # committed DDL: leave the test database as it was
        for name in created:
            cursor.execute(f"DROP TABLE {name}")


def _old_month_with_usage(key, month: date, settings) -> str:
    """Three events of a long-gone month (one batch), in their own partition; then the accepted age
    goes back to its default, as in production."""
    usage_report([usage_event(f"old-{n}", key, "m", input_tokens=1000, output_tokens=0,
                              occurred_at=datetime(month.year, month.month, 1 + n, 8, tzinfo=UTC)) for n in range(3)])
    settings.CONSOLE_USAGE_MAX_AGE_DAYS = 30
    assert partition_name(month) in usage_partitions_ensure().created  # out of the default partition
    return partition_name(month)


def test_retention_refuses_a_partition_not_folded_yet_then_drops_it_once_folded(key, settings):
    name = _old_month_with_usage(key, date(2025, 1, 1), settings)
    now = datetime(2026, 6, 1, tzinfo=UTC)  # January 2025 ended more than 400 days before

    refused = usage_retention_apply(now=now)

    assert refused.dropped == []
    assert refused.refused == [(name, "1 batch(es) with events in it are not folded into rollups yet")]
    assert table_exists(name)

    usage_aggregate()
    dropped = usage_retention_apply(now=now)

    assert dropped.dropped == [name] and dropped.refused == []
    assert not table_exists(name)
    # Only raw events go: the rollups and the ledger keep the month.
    assert UsageRollup.objects.aggregate(n=Sum("requests"))["n"] == 3
    assert UsageDailyRollup.objects.aggregate(c=Sum("cost"))["c"] == Decimal("0.003")
    assert charged(key.organization_id) == Decimal("0.003")


def test_retention_refuses_a_partition_whose_rollups_do_not_match_its_events(key, settings):
    name = _old_month_with_usage(key, date(2025, 2, 1), settings)
    usage_aggregate()
    UsageDailyRollup.objects.filter(day=date(2025, 2, 2)).update(requests=5)  # drifted from the events

    result = usage_retention_apply(now=datetime(2026, 6, 1, tzinfo=UTC))

    assert result.dropped == []
    [(partition, reason)] = result.refused
    assert partition == name
    assert f"{key.organization.public_id} on 2025-02-02" in reason
    assert "daily rollups 5 calls" in reason
    assert table_exists(name) and rows_in(name) == 3


def test_retention_keeps_partitions_inside_the_retention_period(key, settings):
    name = _old_month_with_usage(key, date(2025, 3, 1), settings)
    usage_aggregate()

    # March 2025 ends on 2025-04-01; 400 days later is 2026-05-06.
    assert usage_retention_apply(now=datetime(2026, 5, 5, tzinfo=UTC)).dropped == []
    assert usage_retention_apply(now=datetime(2026, 5, 7, tzinfo=UTC)).dropped == [name]


def test_retention_refuses_to_run_when_it_would_drop_events_still_accepted(settings):
    settings.CONSOLE_USAGE_RETENTION_DAYS = 20
    settings.CONSOLE_USAGE_MAX_AGE_DAYS = 30

    result = usage_retention_apply(now=datetime(2030, 1, 1, tzinfo=UTC))

    assert "must exceed CONSOLE_USAGE_MAX_AGE_DAYS" in result.skipped and result.dropped == []


def test_event_ids_past_the_accepted_age_are_forgotten(key, settings):
    now = datetime(2030, 6, 1, tzinfo=UTC)
    usage_report([usage_event("old", key, "m", occurred_at=now - timedelta(days=40)),
                  usage_event("recent", key, "m", occurred_at=now - timedelta(days=5))], now=now)
    settings.CONSOLE_USAGE_MAX_AGE_DAYS = 30

    assert usage_keys_prune(now=now) == 1

    assert list(UsageEventKey.objects.values_list("event_id", flat=True)) == ["recent"]
    # Re-sending the forgotten one is refused for its age before its id is looked at.
    assert [r.error for r in usage_report([usage_event("old", key, "m", occurred_at=now - timedelta(days=40))],
                                          now=now).rejected] == ["timestamp_too_old"]


def test_the_command_reports_what_it_did_and_fails_on_a_refused_partition(key, settings, capsys):
    name = _old_month_with_usage(key, date(2024, 1, 1), settings)

    with pytest.raises(CommandError, match="1 partition"):
        call_command("usage_partitions")
    assert f"Kept {name}: 1 batch(es) with events in it are not folded" in capsys.readouterr().err

    usage_aggregate()
    call_command("usage_partitions")
    out = capsys.readouterr().out
    assert f"Dropped {name}" in out and "Usage partitions are up to date." in out
    call_command("usage_partitions", "--list")
    assert partition_name(date(2024, 1, 1)) not in capsys.readouterr().out
