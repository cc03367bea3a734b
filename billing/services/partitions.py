"""Raw usage events on PostgreSQL: monthly range partitions, created ahead, dropped after retention.

`billing_usageevent` is partitioned by `occurred_at`, one partition per UTC month
(`billing_usageevent_y2026m12`), plus a default partition that catches an event whose month has
no partition yet, so nothing is ever lost; the next maintenance run creates that month's partition
and moves the rows into it. Retention drops whole partitions (`DROP TABLE`, never a row-by-row
DELETE), and only one that is folded into rollups and reconciled. SQLite (the embedded default)
keeps one plain table: there these jobs report that they have nothing to do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import structlog
from django.conf import settings
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import Subquery
from django.utils import timezone

from ..models import UsageEvent, UsageEventKey
from ..selectors.reconcile import usage_reconcile_range

logger = structlog.get_logger(__name__)

TABLE = UsageEvent._meta.db_table
DEFAULT_PARTITION = f"{TABLE}_default"
_NAME = re.compile(rf"^{TABLE}_y(\d{{4}})m(\d{{2}})$")
_MAINTENANCE_LOCK_ID = 0x5553_5054  # "USPT": one maintenance run at a time
KEY_PRUNE_CHUNK = 50_000


def partitioned() -> bool:
    return connection.vendor == "postgresql"


def month_start(moment: datetime | date) -> date:
    return date(moment.year, moment.month, 1)


def next_month(month: date) -> date:
    return (month + timedelta(days=32)).replace(day=1)


def partition_name(month: date) -> str:
    return f"{TABLE}_y{month:%Y}m{month:%m}"


def _bound(month: date) -> str:
    return datetime(month.year, month.month, 1, tzinfo=UTC).isoformat()


@dataclass(frozen=True)
class Partition:
    name: str
    month: date  # first day; the partition holds [month, next month)
    rows: int | None = None  # the planner's estimate, for display

    @property
    def end(self) -> date:
        return next_month(self.month)


def usage_partitions() -> list[Partition]:
    """The monthly partitions that exist, oldest first (the default partition is not listed)."""
    if not partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, c.reltuples FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            [TABLE],
        )
        found = []
        for name, rows in cursor.fetchall():
            match = _NAME.match(name)
            if match:
                found.append(Partition(name, date(int(match[1]), int(match[2]), 1), max(int(rows), 0)))
    return sorted(found, key=lambda p: p.month)


def _default_months(cursor: CursorWrapper) -> list[date]:
    cursor.execute(
        f"SELECT DISTINCT date_trunc('month', occurred_at AT TIME ZONE 'UTC')::date FROM {DEFAULT_PARTITION}"  # noqa: S608 -- fixed identifier  # nosec B608
    )
    return [row[0] for row in cursor.fetchall()]


def _create_partition(cursor: CursorWrapper, month: date) -> int:
    """Create the month's partition; rows of that month waiting in the default partition move into
    it in the same transaction. Returns how many rows moved."""
    name, start, end = partition_name(month), _bound(month), _bound(next_month(month))
    execute = cursor.execute
    execute(
        f"SELECT count(*) FROM {DEFAULT_PARTITION} WHERE occurred_at >= %s AND occurred_at < %s",  # noqa: S608  # nosec B608
        [start, end],
    )
    waiting = int(cursor.fetchone()[0])
    if not waiting:
        execute(f"CREATE TABLE {name} PARTITION OF {TABLE} FOR VALUES FROM ('{start}') TO ('{end}')")
        return 0
    # PostgreSQL refuses a partition whose rows sit in the default partition: build it beside the
    # table, move the rows, then attach it (indexes and foreign keys are added on attach).
    execute(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    execute(
        f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE occurred_at >= %s AND occurred_at < %s "  # noqa: S608  # nosec B608
        f"RETURNING *) INSERT INTO {name} SELECT * FROM moved",
        [start, end],
    )
    execute(f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM ('{start}') TO ('{end}')")
    return waiting


@dataclass
class MaintenanceResult:
    created: list[str] = field(default_factory=list)
    moved_rows: int = 0  # rows moved out of the default partition
    dropped: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (partition, why)
    keys_pruned: int = 0
    skipped: str = ""  # why nothing was done (SQLite, another run holds the lock)


def _try_lock(cursor: CursorWrapper) -> bool:
    cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_MAINTENANCE_LOCK_ID])
    return bool(cursor.fetchone()[0])


def usage_partitions_ensure(*, now: datetime | None = None, months_ahead: int | None = None) -> MaintenanceResult:
    """Create the partitions from the oldest month an event may still be accepted for through
    `months_ahead` months ahead, and one for every month waiting in the default partition.

    Each partition is created in its own short transaction with a lock timeout, so a busy ingest
    is never queued behind the DDL for long; a partition that timed out is created next run.
    """
    result = MaintenanceResult()
    if not partitioned():
        result.skipped = "not PostgreSQL: usage events are one unpartitioned table"
        return result
    now = now or timezone.now()
    ahead = settings.CONSOLE_USAGE_PARTITIONS_AHEAD if months_ahead is None else months_ahead
    month = month_start(now - timedelta(days=settings.CONSOLE_USAGE_MAX_AGE_DAYS))
    last = month_start(now)
    for _ in range(ahead):
        last = next_month(last)
    wanted: set[date] = set()
    while month <= last:
        wanted.add(month)
        month = next_month(month)
    with transaction.atomic(), connection.cursor() as cursor:
        if not _try_lock(cursor):
            result.skipped = "another maintenance run holds the lock"
            return result
        wanted |= set(_default_months(cursor))
    existing = {p.month for p in usage_partitions()}
    for missing in sorted(wanted - existing):
        with transaction.atomic(), connection.cursor() as cursor:
            if not _try_lock(cursor):
                result.skipped = "another maintenance run holds the lock"
                break
            cursor.execute("SET LOCAL lock_timeout = '5s'")
            result.moved_rows += _create_partition(cursor, missing)
            result.created.append(partition_name(missing))
    if result.created:
        logger.info("usage_partitions_created", partitions=result.created, moved_rows=result.moved_rows)
    return result


def _unfolded_batches(cursor: CursorWrapper, name: str) -> int:
    cursor.execute(
        f"SELECT count(DISTINCT e.batch_id) FROM {name} e JOIN billing_usagebatch b ON b.id = e.batch_id "  # noqa: S608  # nosec B608
        "WHERE b.folded_at IS NULL"
    )
    return int(cursor.fetchone()[0])


def usage_retention_apply(*, now: datetime | None = None) -> MaintenanceResult:
    """Drop each monthly partition that ended more than `CONSOLE_USAGE_RETENTION_DAYS` ago, a whole
    partition at a time, but only when every batch in it is folded into rollups and its days
    reconcile (events = hourly rollups = daily rollups = ledger charges, per organization and
    day). Otherwise the partition stays, and why is logged (an error: a person must look)."""
    result = MaintenanceResult()
    if not partitioned():
        result.skipped = "not PostgreSQL: retention drops partitions, and SQLite has none"
        return result
    days = settings.CONSOLE_USAGE_RETENTION_DAYS
    if days <= settings.CONSOLE_USAGE_MAX_AGE_DAYS + 1:
        result.skipped = (f"CONSOLE_USAGE_RETENTION_DAYS ({days}) must exceed CONSOLE_USAGE_MAX_AGE_DAYS "
                          f"({settings.CONSOLE_USAGE_MAX_AGE_DAYS}) + 1: events that old are still accepted")
        logger.error("usage_retention_misconfigured", reason=result.skipped)
        return result
    cutoff = (now or timezone.now()).astimezone(UTC).date() - timedelta(days=days)
    for partition in usage_partitions():
        if partition.end > cutoff:
            break
        with transaction.atomic(), connection.cursor() as cursor:
            if not _try_lock(cursor):
                result.skipped = "another maintenance run holds the lock"
                break
            reason = _retention_refusal(cursor, partition)
            if reason:
                result.refused.append((partition.name, reason))
                logger.error("usage_retention_refused", partition=partition.name, reason=reason)
                continue
            cursor.execute("SET LOCAL lock_timeout = '5s'")
            cursor.execute(f"DROP TABLE {partition.name}")
            result.dropped.append(partition.name)
            logger.info("usage_partition_dropped", partition=partition.name)
    return result


def _retention_refusal(cursor: CursorWrapper, partition: Partition) -> str:
    unfolded = _unfolded_batches(cursor, partition.name)
    if unfolded:
        return f"{unfolded} batch(es) with events in it are not folded into rollups yet"
    mismatches = usage_reconcile_range(first=partition.month, last=partition.end - timedelta(days=1))
    if mismatches:
        first = mismatches[0]
        return (f"{len(mismatches)} organization-day(s) do not reconcile, e.g. {first.organization_id} on "
                f"{first.day}: {first.describe()}")
    return ""


def usage_keys_prune(*, now: datetime | None = None) -> int:
    """Forget event ids no re-send can repeat any more: an event older than the accepted age is
    rejected before its id is looked at, so its key has done its work. Chunked deletes."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.CONSOLE_USAGE_MAX_AGE_DAYS + 1)
    pruned = 0
    while True:
        chunk = UsageEventKey.objects.filter(occurred_at__lt=cutoff).values("event_id")[:KEY_PRUNE_CHUNK]
        deleted = UsageEventKey.objects.filter(event_id__in=Subquery(chunk)).delete()[0]
        pruned += deleted
        if deleted < KEY_PRUNE_CHUNK:
            return pruned


def usage_partitions_maintain(*, now: datetime | None = None) -> MaintenanceResult:
    """The beat job: partitions ahead, retention, old idempotency keys."""
    result = usage_partitions_ensure(now=now)
    retention = usage_retention_apply(now=now)
    result.dropped, result.refused = retention.dropped, retention.refused
    result.skipped = result.skipped or retention.skipped
    result.keys_pruned = usage_keys_prune(now=now)
    return result
