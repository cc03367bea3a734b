"""Real threads on PostgreSQL and Redis: money and limits hold under concurrency.

- 200 concurrent authorize calls at a project's budget edge while usage arrives: the overspend is
  bounded by the calls in flight, and no call that starts after the crossing is allowed.
- 10 000 events in overlapping batches from several threads, 30 % re-sent: each stored once, the
  ledger's usage equals the exact sum of event costs rounded up once a day, and the spend counters match.
- 8 gateways reporting one organization at once (the hot organization): its books stay exact.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest
from django.db import OperationalError, connection
from django.db.models import Sum
from django.test import Client
from django.utils import timezone

from billing.models import BillingAccount, LedgerEntry, LedgerKind, ProjectSpend, UsageEvent
from billing.tests.conftest import Gateway
from billing.tests.factories import (
    PriceFactory,
    ProjectFactory,
    fund,
    make_api_key,
    usage_charged,
    usage_due,
    usage_event,
)
from orgs.tests.factories import OrganizationFactory
from projects.models import Project

pytestmark = pytest.mark.django_db(transaction=True)


def test_200_concurrent_authorizations_at_the_budget_edge_while_usage_arrives():
    PriceFactory(model="m", input_per_mtok=Decimal("10"), output_per_mtok=Decimal("0"))  # 1000 tokens = $0.01
    raw, key = make_api_key()
    fund(key.organization, "50")
    Project.objects.filter(pk=key.project_id).update(daily_budget=Decimal("1.00"))
    Gateway(Client()).usage([usage_event("seed", key, "m", input_tokens=95_000, output_tokens=0)])  # $0.95 spent
    workers, calls_each, call_cost = 20, 10, Decimal("0.01")
    authorizations: list[tuple[float, int]] = []  # (started at, status)
    reports: list[float] = []  # when each usage report had been committed
    barrier = threading.Barrier(workers)

    def gateway_worker(n: int) -> None:
        gateway = Gateway(Client())
        barrier.wait()
        try:
            for i in range(calls_each):
                started = time.monotonic()
                status = gateway.authorize(raw, estimate=1000).status_code
                authorizations.append((started, status))
                if status == 200:  # the call goes to the model; its usage is reported right after
                    response = gateway.usage([usage_event(f"w{n}-{i}", key, "m", input_tokens=1000,
                                                          output_tokens=0)])
                    assert response.json()["accepted"] == 1
                    reports.append(time.monotonic())
        finally:
            connection.close()

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(gateway_worker, range(workers)))

    assert len(authorizations) == workers * calls_each
    allowed = sum(1 for _, status in authorizations if status == 200)
    denied = {status for _, status in authorizations if status != 200}
    assert denied == {403}
    spent = ProjectSpend.objects.get(project=key.project, period="day").spent
    assert spent == Decimal("0.95") + allowed * call_cost
    # Each worker has at most one call between authorize and its usage report: that is what can
    # still land after the budget is reached.
    assert Decimal("1.00") <= spent <= Decimal("1.00") + workers * call_cost
    # Once the report that reached the budget was committed, nothing more was allowed.
    reports.sort()
    crossing = reports[4]  # the 5th report took the spend from $0.99 to $1.00
    assert not [started for started, status in authorizations if status == 200 and started > crossing]
    assert Gateway(Client()).authorize(raw).json()["error"]["code"] == "daily_budget_exceeded"


def test_10000_events_from_threads_with_30_percent_duplicates_are_stored_and_charged_once():
    PriceFactory(model="small", input_per_mtok=Decimal("0.150000"), output_per_mtok=Decimal("0.600000"))
    PriceFactory(model="large", input_per_mtok=Decimal("2.500000"), output_per_mtok=Decimal("10.000000"))
    orgs = [OrganizationFactory() for _ in range(3)]
    keys = []
    for org in orgs:
        fund(org, "1000")
        for _ in range(2):
            keys.append(make_api_key(project=ProjectFactory(organization=org))[1])
    rng = random.Random(5)
    now = timezone.now()
    events = [
        usage_event(
            f"evt-{n:05d}", rng.choice(keys), rng.choice(["small", "large"]),
            input_tokens=rng.randint(0, 5000), output_tokens=rng.randint(0, 2000),
            occurred_at=now - timedelta(seconds=rng.randint(0, 3600)),
        )
        for n in range(10_000)
    ]
    resent = rng.sample(events, 3_000)
    sends = events + resent
    rng.shuffle(sends)
    batches = [sends[i : i + 1000] for i in range(0, len(sends), 1000)]
    totals: dict[str, int] = defaultdict(int)
    lock = threading.Lock()

    def send(batch: list[dict]) -> None:
        try:
            response = Gateway(Client()).usage(batch)
            assert response.status_code == 200, response.content
            body = response.json()
            with lock:
                totals["accepted"] += body["accepted"]
                totals["duplicates"] += body["duplicates"]
                totals["rejected"] += len(body["rejected"])
        finally:
            connection.close()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(send, batches))

    assert dict(totals) == {"accepted": 10_000, "duplicates": 3_000, "rejected": 0}
    assert UsageEvent.objects.count() == 10_000
    for org in orgs:
        assert_books_exact(org, funded=Decimal("1000"))
    for key in keys:
        cost = UsageEvent.objects.filter(project=key.project).aggregate(c=Sum("cost"))["c"]
        spend = dict(ProjectSpend.objects.filter(project=key.project).values_list("period", "spent"))
        assert spend == {"day": cost, "month": cost} or _spans_midnight(key.project, cost, spend)
    expected = {e["id"]: (e["input_tokens"], e["output_tokens"]) for e in events}
    stored = {e: (i, o) for e, i, o in UsageEvent.objects.values_list("event_id", "input_tokens", "output_tokens")}
    assert stored == expected


def assert_books_exact(org, *, funded: Decimal) -> None:
    """ledger = the events' costs (each day's exact cost rounded up once), balance = the ledger, and
    every ledger row carries the balance after it."""
    charged = usage_charged(org)
    assert charged == usage_due(org)
    assert BillingAccount.objects.get(organization=org).balance == funded - charged
    chain = list(LedgerEntry.objects.filter(organization=org).order_by("id").values_list("amount", "balance_after"))
    running = Decimal(0)
    for amount, balance_after in chain:
        running += amount
        assert balance_after == running


def test_8_gateways_reporting_one_organization_at_once_keep_its_books_exact():
    """The hot organization: concurrent batches of one organization, with re-sends, all charge its
    one balance; nothing is lost or charged twice and the balance_after chain stays whole."""
    PriceFactory(model="small", input_per_mtok=Decimal("0.150000"), output_per_mtok=Decimal("0.600000"))
    org = OrganizationFactory()
    fund(org, "1000")
    keys = [make_api_key(project=ProjectFactory(organization=org))[1] for _ in range(2)]
    rng = random.Random(8)
    now = timezone.now()
    events = [usage_event(f"hot-{n:05d}", rng.choice(keys), "small", input_tokens=rng.randint(1, 3000),
                          output_tokens=rng.randint(0, 900), occurred_at=now - timedelta(seconds=rng.randint(0, 600)))
              for n in range(4_000)]
    sends = events + rng.sample(events, 800)
    rng.shuffle(sends)
    batches = [sends[i : i + 600] for i in range(0, len(sends), 600)]  # 8 batches, one per gateway
    barrier = threading.Barrier(len(batches))

    def send(batch: list[dict]) -> tuple[int, int]:
        try:
            barrier.wait(timeout=30)
            body = Gateway(Client()).usage(batch).json()
            return body["accepted"], body["duplicates"]
        finally:
            connection.close()

    with ThreadPoolExecutor(len(batches)) as pool:
        answers = list(pool.map(send, batches))
    assert (sum(a for a, _ in answers), sum(d for _, d in answers)) == (4_000, 800)
    assert UsageEvent.objects.filter(organization=org).count() == 4_000
    assert_books_exact(org, funded=Decimal("1000"))


def _spans_midnight(project: Project, cost: Decimal, spend: dict[str, Decimal]) -> bool:
    """Run just after 00:00 UTC, the last hour's events fall on two days: the days then add up."""
    days = ProjectSpend.objects.filter(project=project, period="day").aggregate(s=Sum("spent"))["s"]
    months = ProjectSpend.objects.filter(project=project, period="month").aggregate(s=Sum("spent"))["s"]
    return days == months == cost


def test_a_deadlocked_batch_is_retried_whole_and_charged_once():
    PriceFactory(model="m", input_per_mtok=Decimal("1"), output_per_mtok=Decimal("2"))
    _raw, key = make_api_key()
    fund(key.organization, "10")
    victims: list[str] = []

    def deadlock_once(execute, sql, params, many, context):
        if 'INSERT INTO "billing_ledgerentry"' in sql and not victims:
            victims.append(sql)
            error = OperationalError("deadlock detected")
            error.__cause__ = psycopg.errors.DeadlockDetected("deadlock detected")
            raise error
        return execute(sql, params, many, context)

    with connection.execute_wrapper(deadlock_once):
        response = Gateway(Client()).usage([usage_event(f"e{i}", key, "m") for i in range(3)])
    assert victims, "the deadlock was not injected"
    assert response.json() == {"accepted": 3, "duplicates": 0, "rejected": []}
    assert UsageEvent.objects.count() == 3
    assert LedgerEntry.objects.filter(kind=LedgerKind.USAGE).count() == 1
    assert BillingAccount.objects.get(organization=key.organization).balance == Decimal("10") - Decimal("0.006")
