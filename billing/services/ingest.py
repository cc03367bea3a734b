"""Usage ingest: store a batch of usage events once, charge their cost to the balance and bump the
project's spend counters, in one transaction.

Lock order, everywhere: usage events (by event id) → billing accounts (by organization id) →
project spend counters (by project, period). A fixed order means concurrent batches wait for
each other instead of deadlocking; a deadlock or serialization failure is still retried.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db import connection
from django.utils import timezone

from console.errors import DomainError
from projects.models import APIKey

from ..codes import RejectReason, RequestError
from ..models import (
    BillingAccount,
    DailyUsageCost,
    LedgerEntry,
    LedgerKind,
    Price,
    ProjectSpend,
    SpendPeriod,
    UsageBatch,
    UsageEvent,
    UsageEventKey,
)
from ..money import ZERO, usage_charge, usage_cost
from ..ratelimits import UsedCall, limiter_corrections_apply, usage_limiter_corrections
from .alerts import schedule_usage_notify
from .ledger import lock_accounts
from .prices import price_at
from .retry import atomic_with_retry

MAX_EVENTS_PER_BATCH = 1000


@dataclass(frozen=True)
class Rejection:
    index: int
    id: str | None
    error: RejectReason


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)


@dataclass(frozen=True)
class UsageEventIn:
    """One usage event as the gateway reported it, already parsed and checked by the API."""

    index: int  # its position in the batch, for the rejection report
    event_id: str
    key_id: str
    model: str
    input_tokens: int
    output_tokens: int
    occurred_at: datetime
    estimated_tokens: int
    authorization_id: str = ""  # authorize's id for this call, "" when the gateway did not send it

    @property
    def content(self) -> tuple[object, ...]:
        return (self.key_id, self.model, self.input_tokens, self.output_tokens, self.occurred_at)


@dataclass(frozen=True)
class _Key:
    pk: int
    project_id: int
    organization_id: int
    project_public_id: str
    organization_public_id: str


def _month_start(day: date) -> date:
    return day.replace(day=1)


def usage_ingest(*, events: Sequence[UsageEventIn], now: datetime | None = None) -> IngestResult:
    """Store a batch of parsed usage events, charge their cost and bump project spend, in one
    transaction (retried on a deadlock).

    An event id already stored counts as a duplicate (never charged twice); the same id with other
    content is rejected as `conflicting_duplicate`, as are unknown keys and models. After commit,
    the rate limiter's token windows are corrected to the actual tokens and the calls' concurrency
    slots are freed (billing/ratelimits.py).
    """
    if len(events) > MAX_EVENTS_PER_BATCH:
        raise DomainError(f"A batch holds at most {MAX_EVENTS_PER_BATCH} events.", code=RequestError.TOO_MANY_EVENTS)
    if not events:
        return IngestResult()
    now = now or timezone.now()
    outcome = atomic_with_retry(lambda: _ingest_valid(list(events), now), what="usage_ingest")
    outcome.rejected.sort(key=lambda r: r.index)
    return outcome


def _ingest_valid(events: list[UsageEventIn], now: datetime) -> IngestResult:
    result = IngestResult()
    first_seen: dict[str, UsageEventIn] = {}
    candidates: list[UsageEventIn] = []
    for event in events:
        earlier = first_seen.get(event.event_id)
        if earlier is None:
            first_seen[event.event_id] = event
            candidates.append(event)
        elif earlier.content == event.content:
            result.duplicates += 1
        else:
            result.rejected.append(Rejection(event.index, event.event_id, RejectReason.CONFLICTING_DUPLICATE))

    keys = {
        row[0]: _Key(*row[1:])
        for row in APIKey.objects.filter(public_id__in={e.key_id for e in candidates}).values_list(
            "public_id", "pk", "project_id", "organization_id", "project__public_id", "organization__public_id"
        )
    }
    prices: dict[str, list[Price]] = defaultdict(list)
    for row in Price.objects.filter(model__in={e.model for e in candidates}).order_by("model", "-effective_from"):
        prices[row.model].append(row)

    to_insert: list[tuple[UsageEventIn, _Key, Decimal]] = []
    for event in candidates:
        key = keys.get(event.key_id)
        if key is None:
            result.rejected.append(Rejection(event.index, event.event_id, RejectReason.UNKNOWN_KEY))
            continue
        price = price_at(prices.get(event.model, []), event.occurred_at)
        if price is None:
            result.rejected.append(Rejection(event.index, event.event_id, RejectReason.UNKNOWN_MODEL))
            continue
        cost = usage_cost(
            input_tokens=event.input_tokens,
            output_tokens=event.output_tokens,
            input_price=price.input_per_mtok,
            output_price=price.output_per_mtok,
        )
        to_insert.append((event, key, cost))
    if not to_insert:
        return result

    # Claimed in event id order: two batches sharing ids wait on each other in the same order.
    to_insert.sort(key=lambda item: item[0].event_id)
    digests = {
        event.event_id: UsageEventKey.digest_of(
            api_key_id=key.pk, model=event.model, input_tokens=event.input_tokens,
            output_tokens=event.output_tokens, occurred_at=event.occurred_at,
        )
        for event, key, _cost in to_insert
    }
    claimed = _claim_event_ids(to_insert, digests)
    if len(claimed) != len(to_insert):
        # Accepted before (a re-send, whatever partition holds it) or by a concurrent batch: a
        # duplicate if the content is the same, otherwise a conflict. Never charged again.
        repeated = [event for event, _key, _cost in to_insert if event.event_id not in claimed]
        stored = dict(
            UsageEventKey.objects.filter(event_id__in=[e.event_id for e in repeated]).values_list("event_id", "digest")
        )
        for event in repeated:
            digest = stored.get(event.event_id)  # None: forgotten by the prune job meanwhile
            if digest is not None and bytes(digest) == digests[event.event_id]:
                result.duplicates += 1
            else:
                result.rejected.append(Rejection(event.index, event.event_id, RejectReason.CONFLICTING_DUPLICATE))
        to_insert = [item for item in to_insert if item[0].event_id in claimed]
    if not to_insert:
        return result
    first = min(event.occurred_at for event, _key, _cost in to_insert)
    batch = UsageBatch.objects.create(received_at=now, events=len(to_insert), first_occurred_at=first)
    _insert_events(batch, to_insert)
    result.accepted = len(to_insert)
    if to_insert:
        _charge_usage(batch=batch, items=to_insert, now=now)
    return result


def _claim_event_ids(items: list[tuple[UsageEventIn, _Key, Decimal]], digests: dict[str, bytes]) -> set[str]:
    """Record the event ids, skipping those already recorded; returns the ids this batch claimed.

    The ids' one unique index lives in `UsageEventKey`, outside the partitioned events table (whose
    unique indexes must hold the partition key): an id is claimed once whatever month its event
    falls in. `INSERT … ON CONFLICT (event_id) DO NOTHING RETURNING event_id` tells which are ours
    without reading them back; a concurrent batch claiming the same id waits for ours to commit.
    """
    table = UsageEventKey._meta.db_table
    ids = [event.event_id for event, _key, _cost in items]
    hashes = [digests[event_id] for event_id in ids]
    times = [event.occurred_at for event, _key, _cost in items]
    if connection.vendor == "postgresql":
        sql = (
            f"INSERT INTO {table} (event_id, digest, occurred_at) SELECT * FROM unnest("  # noqa: S608 -- fixed identifiers  # nosec B608
            "%s::varchar[], %s::bytea[], %s::timestamptz[]) ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
        )
        params: list[Any] = [ids, hashes, times]
    else:
        ops = connection.ops
        sql = (
            f"INSERT INTO {table} (event_id, digest, occurred_at) VALUES {', '.join(['(%s, %s, %s)'] * len(ids))} "  # noqa: S608  # nosec B608
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
        )
        params = []
        for event_id, digest, at in zip(ids, hashes, times, strict=True):
            params += [event_id, digest, ops.adapt_datetimefield_value(at)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {event_id for (event_id,) in cursor.fetchall()}


_EVENT_COLUMNS = (
    "event_id", "batch_id", "organization_id", "project_id", "api_key_id", "model", "input_tokens",
    "output_tokens", "cost", "occurred_at",
)


def _insert_events(batch: UsageBatch, items: list[tuple[UsageEventIn, _Key, Decimal]]) -> None:
    """Insert the (claimed, so new) events. On PostgreSQL the rows travel as ten arrays through
    `unnest` (a short statement: a third of the time of 1000 VALUES tuples, a sixth of
    bulk_create's) and land in their month's partition (or the default one); elsewhere as VALUES."""
    table = UsageEvent._meta.db_table
    columns = ", ".join(_EVENT_COLUMNS)
    rows = [
        (event.event_id, batch.pk, key.organization_id, key.project_id, key.pk, event.model,
         event.input_tokens, event.output_tokens, cost, event.occurred_at)
        for event, key, cost in items
    ]
    if connection.vendor == "postgresql":
        # The foreign keys are checked now, not at COMMIT (Django declares them DEFERRABLE INITIALLY
        # DEFERRED): deferred, a thousand rows' checks ran under the balance row lock taken later
        # in the transaction, which then serialized one organization's concurrent batches.
        sql = (
            f"INSERT INTO {table} ({columns}) SELECT * FROM unnest("  # noqa: S608 -- fixed identifiers  # nosec B608
            "%s::varchar[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::varchar[], "
            "%s::bigint[], %s::bigint[], %s::numeric[], %s::timestamptz[])"
        )
        params: list[Any] = [list(column) for column in zip(*rows, strict=True)]
    else:
        ops = connection.ops
        row = "(" + ", ".join(["%s"] * len(_EVENT_COLUMNS)) + ")"
        sql = f"INSERT INTO {table} ({columns}) VALUES {', '.join([row] * len(rows))}"  # noqa: S608 -- fixed identifiers  # nosec B608
        params = []
        for values in rows:
            params += [*values[:8], ops.adapt_decimalfield_value(values[8], 28, 12),
                       ops.adapt_datetimefield_value(values[9])]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(sql, params)
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")  # Django's default for the rest of the transaction
        else:
            cursor.execute(sql, params)


def _charge_usage(*, batch: UsageBatch, items: list[tuple[UsageEventIn, _Key, Decimal]], now: datetime) -> None:
    """One ledger charge per organization and usage day of the batch, then the spend counters.

    No AuditEvent per charge: the append-only ledger row is the record of a system posting, and an
    audit event per batch would bury people's changes in the audit log.
    """
    charges: dict[tuple[int, date], Decimal] = defaultdict(lambda: ZERO)
    calls: dict[tuple[int, date], int] = defaultdict(int)
    spend: dict[tuple[int, str, date], Decimal] = defaultdict(lambda: ZERO)
    for event, key, cost in items:
        day = event.occurred_at.date()
        charges[(key.organization_id, day)] += cost
        calls[(key.organization_id, day)] += 1
        spend[(key.project_id, SpendPeriod.DAY, day)] += cost
        spend[(key.project_id, SpendPeriod.MONTH, _month_start(day))] += cost

    accounts = lock_accounts(org_id for org_id, _day in charges)
    posted_at = timezone.now()  # under the lock: ledger times follow the balance_after chain
    day_costs_before = _day_costs_add(charges)
    entries: list[LedgerEntry] = []
    for org_id, day in sorted(charges):
        # Rounded once per row, the remainder carried by the day's exact cost (billing/money.py).
        amount = usage_charge(day_cost_before=day_costs_before[(org_id, day)], day_cost_added=charges[(org_id, day)])
        if amount == 0:
            continue  # paid ahead by the rounding up of the day's earlier rows
        account = accounts[org_id]
        account.balance -= amount
        count = calls[(org_id, day)]
        entries.append(
            LedgerEntry(
                organization_id=org_id,
                kind=LedgerKind.USAGE,
                amount=-amount,
                balance_after=account.balance,
                reference=f"usage:{batch.pk}:{org_id}:{day.isoformat()}",
                memo=f"{count} API call{'s' if count != 1 else ''} on {day:%b} {day.day}, {day.year}",
                usage_date=day,
                created_at=posted_at,
            )
        )
    if entries:
        LedgerEntry.objects.bulk_create(entries)
        for account in accounts.values():
            account.updated_at = posted_at
        BillingAccount.objects.bulk_update(list(accounts.values()), ["balance", "updated_at"])
    _spend_add(spend, now=now)
    # One task per batch, after commit: balance alerts of its organizations, consumption
    # notifications of its spend counters (outside the charge's locks, off the ingest's latency).
    schedule_usage_notify(
        organization_ids=sorted({org_id for org_id, _day in charges}),
        periods=sorted({(project_id, period, start.isoformat()) for project_id, period, start in spend}),
    )
    _rate_limits_on_usage(items, now=now)


def _rate_limits_on_usage(items: list[tuple[UsageEventIn, _Key, Decimal]], *, now: datetime) -> None:
    """The rate limiter's hook, after commit: each newly stored event corrects the token windows of
    its call to the actual tokens and frees its concurrency slot (billing/ratelimits.py)."""
    calls = [
        UsedCall(key.organization_public_id, key.project_public_id, event.occurred_at,
                 event.input_tokens + event.output_tokens, event.estimated_tokens, event.authorization_id)
        for event, key, _cost in items
    ]
    limiter_corrections_apply(usage_limiter_corrections(calls=calls, now=now))


def _day_costs_add(added: dict[tuple[int, date], Decimal]) -> dict[tuple[int, date], Decimal]:
    """Each (organization, day)'s exact usage cost before this batch; then adds the batch's.

    Runs under the organizations' account locks, so nobody else changes these rows meanwhile.
    """
    rows = DailyUsageCost.objects.filter(
        organization_id__in={org for org, _day in added}, day__in={day for _org, day in added}
    )
    before = {key: ZERO for key in added}
    for row in rows:
        if (row.organization_id, row.day) in before:
            before[(row.organization_id, row.day)] = row.cost
    DailyUsageCost.objects.bulk_create(
        [DailyUsageCost(organization_id=org, day=day, cost=before[(org, day)] + cost)
         for (org, day), cost in sorted(added.items())],
        update_conflicts=True, unique_fields=["organization", "day"], update_fields=["cost"],
    )
    return before


def _spend_add(spend: dict[tuple[int, str, date], Decimal], *, now: datetime) -> None:
    """Add to the (project, period) counters in one upsert, rows in a fixed order.

    `INSERT … ON CONFLICT … DO UPDATE SET spent = spent + excluded.spent` is the same statement on
    PostgreSQL and SQLite, and the increment happens under the row's lock: no lost update.
    """
    rows = [(key, amount) for key, amount in sorted(spend.items()) if amount]
    if not rows:
        return
    ops = connection.ops
    table = ProjectSpend._meta.db_table
    values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(rows))
    params: list[Any] = []
    for (project_id, period, start), amount in rows:
        params += [
            project_id,
            period,
            ops.adapt_datefield_value(start),
            ops.adapt_decimalfield_value(amount, 28, 12),
            ops.adapt_datetimefield_value(now),
        ]
    sql = (
        f"INSERT INTO {table} (project_id, period, period_start, spent, updated_at) VALUES {values} "  # noqa: S608 -- fixed identifiers  # nosec B608
        f"ON CONFLICT (project_id, period, period_start) DO UPDATE "
        f"SET spent = {table}.spent + excluded.spent, updated_at = excluded.updated_at"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
