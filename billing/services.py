"""Every state change of billing: prices, the ledger, usage ingest, rollups and the gateway's
authorization decision (which consumes the TPM windows).

Lock order, everywhere: usage events (by event id) → billing accounts (by organization id) →
project spend counters (by project, period). A fixed order means concurrent batches wait for
each other instead of deadlocking; a deadlock or serialization failure is still retried.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import structlog
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Count, F, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from console.models import User
from orgs.audit import audit_record
from orgs.limits import rate_limits_for
from orgs.models import Organization
from projects.keys import api_key_touch
from projects.models import APIKey

from .limiter import TpmCorrection, TpmDecision, get_limiter
from .models import (
    BillingAccount,
    LedgerEntry,
    LedgerKind,
    Price,
    ProjectSpend,
    SpendPeriod,
    UsageBatch,
    UsageEvent,
    UsageRollup,
)
from .money import ZERO, format_money, quantize_micro, usage_cost
from .notifications import schedule_balance_alert_check, schedule_usage_notify
from .selectors import GatewayKey, gateway_context
from .timeutils import today_utc

logger = structlog.get_logger(__name__)

T = TypeVar("T")

MAX_EVENTS_PER_BATCH = 1000
MAX_TOKENS_PER_EVENT = 10**9
MAX_EVENT_ID_LENGTH = 128


# --- transactions that retry -----------------------------------------------------------------


def _is_retryable(exc: OperationalError) -> bool:
    # 40P01 deadlock_detected, 40001 serialization_failure (PostgreSQL); SQLite's busy lock.
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    return sqlstate in {"40P01", "40001"} or "database is locked" in str(exc)


def _atomic_with_retry(fn: Callable[[], T], *, what: str, attempts: int = 6) -> T:
    """Run `fn` in its own transaction, retried on a deadlock or serialization failure.

    Inside a caller's transaction there is nothing to retry safely, so it runs once.
    """
    if connection.in_atomic_block:
        with transaction.atomic():
            return fn()
    for attempt in range(1, attempts + 1):
        try:
            with transaction.atomic():
                return fn()
        except OperationalError as exc:
            if attempt == attempts or not _is_retryable(exc):
                raise
            logger.warning("transaction_retry", what=what, attempt=attempt, error=str(exc).splitlines()[0])
            time.sleep(random.uniform(0.005, 0.02) * attempt)  # noqa: S311 -- jitter, not security
    raise AssertionError("unreachable")


# --- prices --------------------------------------------------------------------------------------


@transaction.atomic
def price_set(
    *,
    model: str,
    input_per_mtok: Decimal,
    output_per_mtok: Decimal,
    actor: User | None,
    effective_from: datetime | None = None,
) -> Price:
    """Record a model's price per million tokens from `effective_from` (default: now).

    Earlier prices stay: usage is always costed at the price in force when it occurred.
    """
    model = model.strip()
    errors: dict[str, str] = {}
    if not model or len(model) > 100:
        errors["model"] = "Enter a model name of 1 to 100 characters."
    for name, value in (("input_per_mtok", input_per_mtok), ("output_per_mtok", output_per_mtok)):
        if value < 0 or value != value.quantize(Decimal("0.000001")) or value >= Decimal(10**6):
            errors[name] = "Enter a price of at least 0 with at most 6 decimal places."
    effective_from = effective_from or timezone.now()
    if not errors and Price.objects.filter(model=model, effective_from=effective_from).exists():
        errors["effective_from"] = f"{model} already has a price from {effective_from:%Y-%m-%d %H:%M:%S}."
    if errors:
        raise ValidationError(errors)
    price = Price.objects.create(
        model=model,
        input_per_mtok=input_per_mtok,
        output_per_mtok=output_per_mtok,
        effective_from=effective_from,
        created_by=actor,
    )
    audit_record(
        actor=actor,
        organization=None,
        action="price.set",
        target=price,
        after={
            "model": model,
            "input_per_mtok": str(input_per_mtok),
            "output_per_mtok": str(output_per_mtok),
            "effective_from": effective_from.isoformat(),
        },
    )
    return price


# --- the ledger --------------------------------------------------------------------------------------


def _lock_accounts(organization_ids: Iterable[int]) -> dict[int, BillingAccount]:
    """Lock (creating when missing) the billing accounts, in organization id order."""
    ids = sorted(set(organization_ids))

    def select() -> dict[int, BillingAccount]:
        rows = BillingAccount.objects.select_for_update().filter(organization_id__in=ids).order_by("organization_id")
        return {account.organization_id: account for account in rows}

    accounts = select()
    missing = [i for i in ids if i not in accounts]
    if missing:
        BillingAccount.objects.bulk_create(
            [BillingAccount(organization_id=i) for i in missing], ignore_conflicts=True
        )
        accounts = select()
    return accounts


@dataclass(frozen=True)
class LedgerPostResult:
    entry: LedgerEntry
    created: bool  # False: the reference was already posted with the same content; nothing changed


_STAFF_KINDS = {LedgerKind.TOPUP, LedgerKind.ADJUSTMENT, LedgerKind.REFUND}


def _same_posting(entry: LedgerEntry, *, organization: Organization, kind: str, amount: Decimal) -> bool:
    return entry.organization_id == organization.pk and entry.kind == kind and entry.amount == amount


def ledger_post(
    *,
    organization: Organization,
    kind: str,
    amount: Decimal,
    reference: str,
    actor: User | None,
    memo: str = "",
) -> LedgerPostResult:
    """Post a top-up, adjustment or refund and move the balance with it, in one transaction.

    `amount` is what staff type: positive for top-ups and refunds (a refund pays money back, so the
    balance goes down), signed for adjustments. The reference is unique: posting it again with the
    same content changes nothing and says so (`created=False`); with other content it is refused.
    Top-ups (only) raise the organization's cumulative top-ups, which set its rate tier.
    """
    reference = reference.strip()
    memo = memo.strip()
    errors: dict[str, str] = {}
    if kind not in _STAFF_KINDS:
        errors["kind"] = "Choose top-up, adjustment or refund."
    if not reference or len(reference) > 100:
        errors["reference"] = "Enter a unique reference of 1 to 100 characters (e.g. the payment id)."
    if len(memo) > 200:
        errors["memo"] = "Keep the memo under 200 characters."
    if amount != quantize_micro(amount) or abs(amount) >= Decimal(10**11):
        errors["amount"] = "Enter an amount with at most 6 decimal places."
    elif kind in (LedgerKind.TOPUP, LedgerKind.REFUND) and amount <= 0:
        errors["amount"] = "Enter an amount greater than zero."
    elif kind == LedgerKind.ADJUSTMENT and amount == 0:
        errors["amount"] = "Enter a non-zero amount (negative to take money off the balance)."
    if kind == LedgerKind.ADJUSTMENT and not memo:
        errors["memo"] = "Say why the balance is adjusted."
    if errors:
        raise ValidationError(errors)
    signed = -amount if kind == LedgerKind.REFUND else amount

    def post() -> LedgerPostResult:
        account = _lock_accounts([organization.pk])[organization.pk]
        existing = LedgerEntry.objects.filter(reference=reference).first()
        if existing is not None:
            return _repeated_reference(existing, organization=organization, kind=kind, amount=signed)
        before = account.balance
        after = before + signed
        if kind == LedgerKind.REFUND and after < 0:
            raise ValidationError({"amount": f"A refund cannot exceed the balance ({format_money(before)})."})
        try:
            with transaction.atomic():
                entry = LedgerEntry.objects.create(
                    organization=organization, kind=kind, amount=signed, balance_after=after,
                    reference=reference, memo=memo, created_by=actor,
                )
        except IntegrityError:
            # The same reference committed meanwhile for another organization (this one is locked).
            existing = LedgerEntry.objects.get(reference=reference)
            return _repeated_reference(existing, organization=organization, kind=kind, amount=signed)
        account.balance = after
        account.save(update_fields=["balance", "updated_at"])
        if kind == LedgerKind.TOPUP:
            Organization.objects.filter(pk=organization.pk).update(cumulative_topups=F("cumulative_topups") + amount)
        # A top-up re-arms the balance alert; a refund or adjustment may fire it.
        schedule_balance_alert_check(organization_id=organization.pk)
        audit_record(
            actor=actor,
            organization=organization,
            action=f"ledger.{kind}",
            target=entry,
            before={"balance": str(before)},
            after={"balance": str(after), "amount": str(signed), "reference": reference, "memo": memo},
        )
        return LedgerPostResult(entry=entry, created=True)

    return _atomic_with_retry(post, what="ledger_post")


def _repeated_reference(
    existing: LedgerEntry, *, organization: Organization, kind: str, amount: Decimal
) -> LedgerPostResult:
    if _same_posting(existing, organization=organization, kind=kind, amount=amount):
        return LedgerPostResult(entry=existing, created=False)
    raise ValidationError(
        {"reference": f"Reference “{existing.reference}” is already used by another ledger entry."}
    )


# --- usage ingest ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rejection:
    index: int
    id: str | None
    error: str


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)


@dataclass(frozen=True)
class _Event:
    index: int
    event_id: str
    key_id: str
    model: str
    input_tokens: int
    output_tokens: int
    occurred_at: datetime
    estimated_tokens: int

    @property
    def content(self) -> tuple[object, ...]:
        return (self.key_id, self.model, self.input_tokens, self.output_tokens, self.occurred_at)


def _token_count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKENS_PER_EVENT:
        return None
    return value


def _parse_event(index: int, raw: Any, now: datetime) -> _Event | Rejection:
    """Shape and field rules of one event; rejections carry the reason code of the contract."""
    if not isinstance(raw, dict):
        return Rejection(index, None, "invalid_event")
    event_id = raw.get("id")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_EVENT_ID_LENGTH or not event_id.isprintable():
        return Rejection(index, event_id if isinstance(event_id, str) else None, "invalid_id")
    key_id = raw.get("key_id")
    if not isinstance(key_id, str) or not key_id:
        return Rejection(index, event_id, "unknown_key")
    model = raw.get("model")
    if not isinstance(model, str) or not model:
        return Rejection(index, event_id, "unknown_model")
    input_tokens = _token_count(raw.get("input_tokens"))
    output_tokens = _token_count(raw.get("output_tokens"))
    if input_tokens is None or output_tokens is None:
        return Rejection(index, event_id, "invalid_tokens")
    estimate = raw.get("estimated_tokens", settings.CONSOLE_DEFAULT_ESTIMATED_TOKENS)
    estimated_tokens = _token_count(estimate)
    if estimated_tokens is None:
        return Rejection(index, event_id, "invalid_tokens")
    text = raw.get("occurred_at")
    try:
        occurred_at = parse_datetime(text) if isinstance(text, str) else None
    except ValueError:
        occurred_at = None
    if occurred_at is None:
        return Rejection(index, event_id, "invalid_timestamp")
    if timezone.is_naive(occurred_at):
        occurred_at = occurred_at.replace(tzinfo=UTC)  # the contract's timestamps are UTC unless they say otherwise
    if occurred_at > now + timedelta(seconds=settings.CONSOLE_USAGE_MAX_FUTURE_SECONDS):
        return Rejection(index, event_id, "timestamp_in_future")
    if occurred_at < now - timedelta(days=settings.CONSOLE_USAGE_MAX_AGE_DAYS):
        return Rejection(index, event_id, "timestamp_too_old")
    return _Event(
        index=index,
        event_id=event_id,
        key_id=key_id,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        occurred_at=occurred_at.astimezone(UTC),
        estimated_tokens=estimated_tokens,
    )


@dataclass(frozen=True)
class _Key:
    pk: int
    project_id: int
    organization_id: int
    project_public_id: str
    organization_public_id: str


def _price_at(prices: Sequence[Price], at: datetime) -> Price | None:
    """`prices` newest first: the latest that took effect at or before `at`."""
    for price in prices:
        if price.effective_from <= at:
            return price
    return None


def _month_start(day: date) -> date:
    return day.replace(day=1)


def usage_ingest(*, events: Sequence[Any], now: datetime | None = None) -> IngestResult:
    """Store a batch of usage events, charge their cost and bump project spend, in one transaction.

    Each event is validated on its own: a bad one is rejected with its reason, the others are
    stored. An event id already stored counts as a duplicate (never charged twice); the same id
    with other content is rejected as `conflicting_duplicate`. After commit, the TPM windows are
    corrected by (actual - estimated) tokens.
    """
    if len(events) > MAX_EVENTS_PER_BATCH:
        raise ValidationError(f"A batch holds at most {MAX_EVENTS_PER_BATCH} events.")
    now = now or timezone.now()
    parsed: list[_Event] = []
    result = IngestResult()
    for index, raw in enumerate(events):
        item = _parse_event(index, raw, now)
        if isinstance(item, Rejection):
            result.rejected.append(item)
        else:
            parsed.append(item)
    if not parsed:
        return result
    outcome = _atomic_with_retry(lambda: _ingest_valid(parsed, now), what="usage_ingest")
    result.accepted = outcome.accepted
    result.duplicates = outcome.duplicates
    result.rejected = sorted([*result.rejected, *outcome.rejected], key=lambda r: r.index)
    return result


def _ingest_valid(events: list[_Event], now: datetime) -> IngestResult:
    result = IngestResult()
    first_seen: dict[str, _Event] = {}
    candidates: list[_Event] = []
    for event in events:
        earlier = first_seen.get(event.event_id)
        if earlier is None:
            first_seen[event.event_id] = event
            candidates.append(event)
        elif earlier.content == event.content:
            result.duplicates += 1
        else:
            result.rejected.append(Rejection(event.index, event.event_id, "conflicting_duplicate"))

    keys = {
        row[0]: _Key(*row[1:])
        for row in APIKey.objects.filter(public_id__in={e.key_id for e in candidates}).values_list(
            "public_id", "pk", "project_id", "organization_id", "project__public_id", "organization__public_id"
        )
    }
    prices: dict[str, list[Price]] = defaultdict(list)
    for row in Price.objects.filter(model__in={e.model for e in candidates}).order_by("model", "-effective_from"):
        prices[row.model].append(row)

    def stored_content(ids: Iterable[str]) -> dict[str, tuple[object, ...]]:
        rows = UsageEvent.objects.filter(event_id__in=list(ids)).values_list(
            "event_id", "api_key__public_id", "model", "input_tokens", "output_tokens", "occurred_at"
        )
        return {row[0]: tuple(row[1:]) for row in rows}

    def classify_stored(event: _Event, stored: tuple[object, ...]) -> None:
        if stored == event.content:
            result.duplicates += 1
        else:
            result.rejected.append(Rejection(event.index, event.event_id, "conflicting_duplicate"))

    to_insert: list[tuple[_Event, _Key, Decimal]] = []
    for event in candidates:
        key = keys.get(event.key_id)
        if key is None:
            result.rejected.append(Rejection(event.index, event.event_id, "unknown_key"))
            continue
        price = _price_at(prices.get(event.model, []), event.occurred_at)
        if price is None:
            result.rejected.append(Rejection(event.index, event.event_id, "unknown_model"))
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

    # Inserted in event id order: two batches sharing ids wait on each other in the same order.
    to_insert.sort(key=lambda item: item[0].event_id)
    batch = UsageBatch.objects.create(received_at=now, events=len(to_insert))
    inserted = _insert_events(batch, to_insert)
    if len(inserted) != len(to_insert):
        # Stored before (a re-sent event) or by a concurrent batch: a duplicate if the content is
        # the same, otherwise a conflict. Either way it is not charged again.
        repeated = [item for item in to_insert if item[0].event_id not in inserted]
        stored = stored_content(item[0].event_id for item in repeated)
        for event, _key, _cost in repeated:
            classify_stored(event, stored[event.event_id])
        to_insert = [item for item in to_insert if item[0].event_id in inserted]
        if to_insert:
            UsageBatch.objects.filter(pk=batch.pk).update(events=len(to_insert))
        else:
            batch.delete()
    result.accepted = len(to_insert)
    if to_insert:
        _charge_usage(batch=batch, items=to_insert, now=now)
    return result


_EVENT_COLUMNS = (
    "event_id", "batch_id", "organization_id", "project_id", "api_key_id", "model", "input_tokens",
    "output_tokens", "cost", "occurred_at",
)


def _insert_events(batch: UsageBatch, items: list[tuple[_Event, _Key, Decimal]]) -> set[str]:
    """Insert the events, skipping ids already stored; returns the ids this statement inserted.

    One `INSERT … ON CONFLICT (event_id) DO NOTHING RETURNING event_id`: it tells which rows are ours
    without reading them back. On PostgreSQL the rows travel as ten arrays through `unnest` (a
    short statement: a third of the time of 1000 VALUES tuples, a sixth of bulk_create's);
    elsewhere as VALUES tuples.
    """
    table = UsageEvent._meta.db_table
    columns = ", ".join(_EVENT_COLUMNS)
    rows = [
        (event.event_id, batch.pk, key.organization_id, key.project_id, key.pk, event.model,
         event.input_tokens, event.output_tokens, cost, event.occurred_at)
        for event, key, cost in items
    ]
    if connection.vendor == "postgresql":
        sql = (
            f"INSERT INTO {table} ({columns}) SELECT * FROM unnest("  # noqa: S608 -- fixed identifiers
            "%s::varchar[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::varchar[], "
            "%s::bigint[], %s::bigint[], %s::numeric[], %s::timestamptz[]) "
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
        )
        params: list[Any] = [list(column) for column in zip(*rows, strict=True)]
    else:
        ops = connection.ops
        row = "(" + ", ".join(["%s"] * len(_EVENT_COLUMNS)) + ")"
        sql = (
            f"INSERT INTO {table} ({columns}) VALUES {', '.join([row] * len(rows))} "  # noqa: S608 -- fixed identifiers
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
        )
        params = []
        for values in rows:
            params += [*values[:8], ops.adapt_decimalfield_value(values[8], 18, 6),
                       ops.adapt_datetimefield_value(values[9])]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {event_id for (event_id,) in cursor.fetchall()}


def _charge_usage(*, batch: UsageBatch, items: list[tuple[_Event, _Key, Decimal]], now: datetime) -> None:
    """One ledger charge per organization and usage day of the batch, then the spend counters.

    No AuditEvent per charge: the append-only ledger row is the record of a system posting, and an
    audit event per batch would bury people's changes in the audit log.
    """
    charges: dict[tuple[int, date], Decimal] = defaultdict(lambda: ZERO)
    calls: dict[tuple[int, date], int] = defaultdict(int)
    spend: dict[tuple[int, str, date], Decimal] = defaultdict(lambda: ZERO)
    corrections: dict[tuple[str, str, int], int] = defaultdict(int)
    current_minute = int(now.timestamp() // 60)
    for event, key, cost in items:
        day = event.occurred_at.date()
        charges[(key.organization_id, day)] += cost
        calls[(key.organization_id, day)] += 1
        spend[(key.project_id, SpendPeriod.DAY, day)] += cost
        spend[(key.project_id, SpendPeriod.MONTH, _month_start(day))] += cost
        minute = int(event.occurred_at.timestamp() // 60)
        if minute >= current_minute - 1:  # older minutes have left the TPM window
            delta = event.input_tokens + event.output_tokens - event.estimated_tokens
            corrections[(key.organization_public_id, key.project_public_id, minute)] += delta

    accounts = _lock_accounts(org_id for org_id, _day in charges)
    posted_at = timezone.now()  # under the lock: ledger times follow the balance_after chain
    entries: list[LedgerEntry] = []
    for org_id, day in sorted(charges):
        amount = charges[(org_id, day)]
        if amount == 0:
            continue
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
    if corrections:
        items_ = [TpmCorrection(org, project, minute, delta) for (org, project, minute), delta in corrections.items()]
        transaction.on_commit(lambda: get_limiter().correct(items_))


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
            ops.adapt_decimalfield_value(amount, 18, 6),
            ops.adapt_datetimefield_value(now),
        ]
    sql = (
        f"INSERT INTO {table} (project_id, period, period_start, spent, updated_at) VALUES {values} "  # noqa: S608 -- fixed identifiers
        f"ON CONFLICT (project_id, period, period_start) DO UPDATE "
        f"SET spent = {table}.spent + excluded.spent, updated_at = excluded.updated_at"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


# --- rollups and reconciliation --------------------------------------------------------------------

_AGGREGATE_LOCK_ID = 0x5553_4147  # "USAG": the advisory lock that keeps usage_aggregate single


@dataclass
class AggregateResult:
    batches: int = 0
    events: int = 0
    rollups: int = 0
    skipped: bool = False  # another run held the lock


def usage_aggregate(*, batches_per_step: int = 200, max_steps: int = 50) -> AggregateResult:
    """Fold the events of batches not yet folded into hourly rollups (per key, model, hour).

    Each step folds some batches and marks them folded in the same transaction, so a crash leaves
    them to the next run and nothing is counted twice. The watermark is that per-batch mark rather
    than a highest-id-seen: ids are handed out before commit, so a batch that commits late would
    slip under a moving id mark and never be folded. On PostgreSQL an advisory lock keeps one run
    at a time (a concurrent run returns at once); SQLite serializes writers on its own.
    """
    total = AggregateResult()
    for _ in range(max_steps):
        step = _atomic_with_retry(lambda: _aggregate_step(batches_per_step), what="usage_aggregate")
        if step.skipped:
            total.skipped = total.batches == 0
            break
        total.batches += step.batches
        total.events += step.events
        total.rollups += step.rollups
        if step.batches < batches_per_step:
            break
    if total.batches:
        logger.info("usage_aggregated", batches=total.batches, events=total.events, rollups=total.rollups)
    return total


def _aggregate_step(limit: int) -> AggregateResult:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_AGGREGATE_LOCK_ID])
            if not cursor.fetchone()[0]:
                return AggregateResult(skipped=True)
    batch_ids = list(
        UsageBatch.objects.filter(folded_at__isnull=True).order_by("id").values_list("id", flat=True)[:limit]
    )
    if not batch_ids:
        return AggregateResult()
    groups = list(
        UsageEvent.objects.filter(batch_id__in=batch_ids)
        .annotate(hour=TruncHour("occurred_at", tzinfo=UTC))
        .values("organization_id", "project_id", "api_key_id", "model", "hour")
        .annotate(
            n=Count("id"), input=Sum("input_tokens"), output=Sum("output_tokens"), total=Sum("cost")
        )
        .order_by()
    )
    existing = {
        (r.api_key_id, r.model, r.hour): r
        for r in UsageRollup.objects.filter(
            api_key_id__in={g["api_key_id"] for g in groups}, hour__in={g["hour"] for g in groups}
        )
    }
    to_create: list[UsageRollup] = []
    to_update: list[UsageRollup] = []
    events = 0
    for g in groups:
        events += g["n"]
        rollup = existing.get((g["api_key_id"], g["model"], g["hour"]))
        if rollup is None:
            rollup = UsageRollup(
                organization_id=g["organization_id"], project_id=g["project_id"], api_key_id=g["api_key_id"],
                model=g["model"], hour=g["hour"],
            )
            to_create.append(rollup)
        else:
            to_update.append(rollup)
        rollup.requests += g["n"]
        rollup.input_tokens += g["input"]
        rollup.output_tokens += g["output"]
        rollup.cost += g["total"]
    UsageRollup.objects.bulk_create(to_create)
    UsageRollup.objects.bulk_update(to_update, ["requests", "input_tokens", "output_tokens", "cost"])
    UsageBatch.objects.filter(id__in=batch_ids).update(folded_at=timezone.now())
    return AggregateResult(batches=len(batch_ids), events=events, rollups=len(groups))


@dataclass(frozen=True)
class ReconcileMismatch:
    organization_id: str  # public id
    ledger_usage: Decimal  # what the ledger charged (positive)
    event_cost: Decimal  # the sum of the events' costs

    @property
    def difference(self) -> Decimal:
        return self.ledger_usage - self.event_cost


@dataclass
class ReconcileReport:
    day: date
    organizations: int = 0
    mismatches: list[ReconcileMismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def usage_reconcile(*, day: date) -> ReconcileReport:
    """Check, per organization, that the day's usage charges equal the sum of its events' costs.

    Read-only: a difference is reported (and logged as an error) for a person to investigate.
    """
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    charged = {
        row["organization_id"]: -row["total"]
        for row in LedgerEntry.objects.filter(kind=LedgerKind.USAGE, usage_date=day)
        .values("organization_id")
        .annotate(total=Sum("amount"))
        .order_by()
    }
    costs = {
        row["organization_id"]: row["total"]
        for row in UsageEvent.objects.filter(occurred_at__gte=start, occurred_at__lt=start + timedelta(days=1))
        .values("organization_id")
        .annotate(total=Sum("cost"))
        .order_by()
    }
    org_ids = sorted(set(charged) | set(costs))
    public_ids = dict(Organization.objects.filter(pk__in=org_ids).values_list("pk", "public_id"))
    report = ReconcileReport(day=day, organizations=len(org_ids))
    for org_id in org_ids:
        ledger_usage = quantize_micro(charged.get(org_id) or ZERO)
        event_cost = quantize_micro(costs.get(org_id) or ZERO)
        if ledger_usage != event_cost:
            mismatch = ReconcileMismatch(public_ids.get(org_id, str(org_id)), ledger_usage, event_cost)
            report.mismatches.append(mismatch)
            logger.error(
                "usage_reconcile_mismatch", organization=mismatch.organization_id, day=day.isoformat(),
                ledger_usage=str(ledger_usage), event_cost=str(event_cost), difference=str(mismatch.difference),
            )
    return report


# --- the gateway's authorization -------------------------------------------------------------------


@dataclass(frozen=True)
class AuthorizeDecision:
    status: int
    code: str = ""
    message: str = ""
    key: GatewayKey | None = None
    tpm: TpmDecision | None = None

    @property
    def allowed(self) -> bool:
        return self.status == 200


_KEY_MESSAGES = {
    "malformed": "Incorrect API key provided.",
    "unknown": "Incorrect API key provided.",
    "revoked": "This API key has been revoked.",
    "expired": "This API key has expired.",
}


def gateway_authorize(*, raw_key: str, estimated_tokens: int, now: datetime | None = None) -> AuthorizeDecision:
    """May this key make a call of about `estimated_tokens` now? Checks, in the contract's order:
    key, archived project, balance, daily then monthly budget, then organization + project TPM.

    Nothing about the key is cached, so a revoked key fails on the very next call. The TPM windows
    are consumed only when every other check passed.
    """
    context = gateway_context(raw_key=raw_key, day=today_utc(now))
    if context.key is None or context.error in _KEY_MESSAGES:
        return AuthorizeDecision(401, "invalid_api_key", _KEY_MESSAGES[context.error or "unknown"])
    key = context.key
    if context.error == "project_archived":
        return AuthorizeDecision(403, "project_archived", "This API key's project is archived.", key)
    state = context.state
    if state.balance <= 0:
        return AuthorizeDecision(
            403, "insufficient_balance",
            "Your organization's balance is exhausted. Top up to continue making API calls.", key,
        )
    if key.daily_budget is not None and state.day_spent >= key.daily_budget:
        return AuthorizeDecision(
            403, "daily_budget_exceeded",
            f"This project has reached its daily budget of {format_money(key.daily_budget)}. "
            "Calls are denied until 00:00 UTC or until a project admin raises the budget.", key,
        )
    if key.monthly_budget is not None and state.month_spent >= key.monthly_budget:
        return AuthorizeDecision(
            403, "monthly_budget_exceeded",
            f"This project has reached its monthly budget of {format_money(key.monthly_budget)}. "
            "Calls are denied until the 1st of next month (UTC) or until a project admin raises the budget.", key,
        )
    org_tpm = rate_limits_for(cumulative_topups=key.cumulative_topups, rate_tier_override=key.rate_tier_override).tpm
    project_tpm = min(key.tpm_limit, org_tpm) if key.tpm_limit else org_tpm
    tpm = get_limiter().consume(
        organization_id=key.organization_public_id,
        organization_tpm=org_tpm,
        project_id=key.project_public_id,
        project_tpm=project_tpm,
        tokens=estimated_tokens,
    )
    if not tpm.allowed:
        limit = org_tpm if tpm.scope == "organization" else project_tpm
        return AuthorizeDecision(
            429, "rate_limited",
            f"Rate limit reached: the {tpm.scope}'s limit is {limit:,} tokens per minute. "
            f"Retry after {tpm.retry_after} s.", key, tpm,
        )
    api_key_touch(key)
    return AuthorizeDecision(200, key=key, tpm=tpm)
