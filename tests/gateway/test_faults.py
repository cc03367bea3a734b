"""Fault injection with real processes, killed with SIGKILL in the middle of their work.

- a gunicorn worker killed during a usage batch: the gateway's retry of the batch is charged once;
- a Celery worker killed during usage_aggregate: the rollups equal the events afterwards;
- Redis (our own server) killed mid-run: authorize keeps answering (fail open, counted in /readyz)
  and limits again once Redis is back;
- PostgreSQL unreachable (a TCP proxy in front of it, cut): authorize answers 503 JSON (fail
  closed) and recovers by itself, without a restart.

After each fault the books balance: every event sent is stored once (0 lost, 0 counted twice),
the ledger took each day's exact event cost rounded up once (so ledger = Σ event costs to the
cent, and to the micro-unit), the balance is the top-up minus the ledger's charges, and the
spend counters hold the same cost.

"Mid-work" is made certain where it matters: the test holds a row lock the process needs, waits
until PostgreSQL shows it waiting on that lock (inside its transaction), and kills it then.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from celery import Celery
from django.db import connection
from django.db.models import Count, Sum

from billing.api import usage_report
from billing.models import BillingAccount, ProjectSpend, UsageBatch, UsageEvent, UsageRollup
from billing.services.rollups import usage_aggregate
from billing.tests.factories import PriceFactory, fund, make_api_key, usage_charged, usage_due, usage_event
from projects.models import APIKey, Project
from tests.gateway.figures import FIGURES
from tests.gateway.processes import (
    ROOT,
    CuttableProxy,
    RedisServer,
    children,
    django_env,
    free_port,
    gunicorn_args,
    kill,
    running,
    start,
    stop,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TOKEN = "test-gateway-token"
TOPUP = Decimal("1000")
faults: dict[str, Any] = FIGURES.setdefault(
    "fault injection", {"injected": 0, "events_lost": 0, "events_counted_twice": 0}
)


# --- the database, as the processes see it ------------------------------------------------------


def database_url(*, host: str | None = None, port: int | None = None) -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{host or db['HOST']}:{port or db['PORT']}/{db['NAME']}"


def direct_connection() -> psycopg.Connection[Any]:
    db = connection.settings_dict
    return psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"])


@contextmanager
def row_locked(table: str, column: str, value: int) -> Iterator[None]:
    """Hold `SELECT … FOR UPDATE` on a row from another connection until the block ends."""
    with direct_connection() as conn:
        conn.execute(f"SELECT 1 FROM {table} WHERE {column} = %s FOR UPDATE", [value])  # noqa: S608 -- ours
        yield
        conn.rollback()


def wait_for_lock_waiter(timeout: float = 20) -> int:
    """The pid of the backend that waits for a lock (our process, inside its transaction)."""
    deadline = time.monotonic() + timeout
    with direct_connection() as conn:
        conn.autocommit = True
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            ).fetchone()
            if row:
                return int(row[0])
            time.sleep(0.02)
    pytest.fail("no process came to wait on the lock")


def wait_backend_gone(pid: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    with direct_connection() as conn:
        conn.autocommit = True
        while conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
            if time.monotonic() > deadline:
                pytest.fail(f"backend {pid} of the killed process is still there")
            time.sleep(0.05)


# --- the gateway's side ---------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


def call(port: int, method: str, path: str, *, headers: dict[str, str] | None = None, body: Any = None,
         timeout: float = 30) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"X-Gateway-Token": TOKEN, "Content-Type": "application/json",
                                                       **(headers or {})})
        response = conn.getresponse()
        raw = response.read()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()},
                      json.loads(raw) if raw else None)
    finally:
        conn.close()


def authorize(port: int, raw_key: str, estimate: int) -> Answer:
    return call(port, "GET", "/api/v1/gateway/authorize",
                headers={"Authorization": f"Bearer {raw_key}", "X-Estimated-Tokens": str(estimate)})


@dataclass
class Delivery:
    """What a gateway does with a batch: send it, and on no answer or a 5xx send it again."""

    attempts: int = 0
    answers: list[int] = field(default_factory=list)
    accepted: int = 0
    duplicates: int = 0


def deliver(port: int, events: list[dict[str, Any]], *, timeout: float = 60) -> Delivery:
    delivery = Delivery()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        delivery.attempts += 1
        try:
            answer = call(port, "POST", "/api/v1/gateway/usage", body={"events": events})
        except (OSError, http.client.HTTPException):
            time.sleep(0.2)
            continue
        delivery.answers.append(answer.status)
        if answer.status == 200:
            assert answer.body["rejected"] == []
            delivery.accepted += answer.body["accepted"]
            delivery.duplicates += answer.body["duplicates"]
            return delivery
        assert answer.status == 503, answer
        assert answer.body["error"]["code"] == "service_unavailable"
        time.sleep(0.2)
    pytest.fail(f"the batch was never taken: {delivery}")


def send_in_background(port: int, events: list[dict[str, Any]]) -> tuple[threading.Thread, list[Any]]:
    """One attempt, in a thread: its answer (or the exception) lands in the returned list."""
    outcome: list[Any] = []

    def send() -> None:
        try:
            outcome.append(call(port, "POST", "/api/v1/gateway/usage", body={"events": events}))
        except (OSError, http.client.HTTPException) as exc:
            outcome.append(exc)

    thread = threading.Thread(target=send)
    thread.start()
    return thread, outcome


# --- the books ---------------------------------------------------------------------------------------


@pytest.fixture
def funded() -> tuple[str, APIKey]:
    PriceFactory(model="m", input_per_mtok=Decimal("0.15"), output_per_mtok=Decimal("0.60"))
    raw, key = make_api_key()
    fund(key.organization, TOPUP)
    return raw, key


def events_for(key: APIKey, prefix: str, n: int) -> list[dict[str, Any]]:
    rng = random.Random(prefix)
    return [usage_event(f"{prefix}-{i}", key, "m", input_tokens=rng.randint(1, 5000),
                        output_tokens=rng.randint(0, 2000)) for i in range(n)]


def assert_books_balance(key: APIKey, sent: list[dict[str, Any]]) -> None:
    org = key.organization
    stored = list(UsageEvent.objects.filter(organization=org).values_list("event_id", flat=True))
    sent_ids = {e["id"] for e in sent}
    lost = sent_ids - set(stored)
    batched = UsageBatch.objects.aggregate(n=Sum("events"))["n"] or 0
    faults["events_lost"] += len(lost)
    faults["events_counted_twice"] += batched - len(stored)
    assert not lost, f"{len(lost)} events lost"
    assert set(stored) == sent_ids and len(stored) == len(sent_ids)
    assert batched == len(stored), "an event counted in two batches"
    charged = usage_charged(org)
    costs = UsageEvent.objects.filter(organization=org).aggregate(c=Sum("cost"))["c"]
    assert charged == usage_due(org)  # each day's exact cost, rounded up once
    assert round(charged, 2) == round(costs, 2)  # to the cent
    assert BillingAccount.objects.get(organization=org).balance == TOPUP - charged
    month = ProjectSpend.objects.filter(project=key.project, period="month").aggregate(s=Sum("spent"))["s"]
    assert month == costs


def rollups_equal_events() -> None:
    events = {
        (row["api_key_id"], row["model"]): (row["n"], row["i"], row["o"], row["c"])
        for row in UsageEvent.objects.values("api_key_id", "model").annotate(
            n=Count("id"), i=Sum("input_tokens"), o=Sum("output_tokens"), c=Sum("cost")).order_by()
    }
    rollups = {
        (row["api_key_id"], row["model"]): (row["n"], row["i"], row["o"], row["c"])
        for row in UsageRollup.objects.values("api_key_id", "model").annotate(
            n=Sum("requests"), i=Sum("input_tokens"), o=Sum("output_tokens"), c=Sum("cost")).order_by()
    }
    assert rollups == events


@contextmanager
def gunicorn(tmp_path: Path, *, database: str, redis: str) -> Iterator[tuple[int, Any]]:
    port = free_port()
    env = django_env(database_url=database, redis_url=redis)
    with running("gunicorn", gunicorn_args(port), port, tmp_path / "gunicorn.log", cwd=ROOT, env=env) as master:
        yield port, master


def the_worker(master: Any, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = children(master.pid)
        if workers:
            return workers[0]
        time.sleep(0.05)
    pytest.fail("gunicorn has no worker")


# --- the faults -------------------------------------------------------------------------------------


def test_a_gunicorn_worker_killed_during_a_usage_batch_the_retry_is_charged_once(tmp_path, funded):
    _raw, key = funded
    sent: list[dict[str, Any]] = []
    with gunicorn(tmp_path, database=database_url(), redis=os.environ["REDIS_URL"]) as (port, master):
        # 1. Inside the batch's transaction: events inserted, waiting for the account's lock.
        batch = events_for(key, "locked", 500)
        sent += batch
        with row_locked("billing_billingaccount", "organization_id", key.organization_id):
            thread, outcome = send_in_background(port, batch)
            backend = wait_for_lock_waiter()
            kill(the_worker(master))
            faults["injected"] += 1
            thread.join(30)
        assert isinstance(outcome[0], Exception)  # the gateway got no answer, so it sends again
        wait_backend_gone(backend)  # PostgreSQL rolled the dead worker's transaction back
        assert not UsageEvent.objects.filter(event_id__startswith="locked-").exists()
        retry = deliver(port, batch)
        assert (retry.accepted, retry.duplicates) == (500, 0)

        # 2. At random moments: parsing, inserting, committing or answering.
        # A clean batch first: how long one takes, so the kills fall within that window.
        batch = events_for(key, "timed", 300)
        sent += batch
        started = time.monotonic()
        assert deliver(port, batch).accepted == 300
        window = time.monotonic() - started
        rng = random.Random(11)
        moments: dict[str, int] = defaultdict(int)
        for round_ in range(4):
            batch = events_for(key, f"random{round_}", 300)
            sent += batch
            thread, outcome = send_in_background(port, batch)
            time.sleep(rng.uniform(0.0, window))
            kill(the_worker(master))
            faults["injected"] += 1
            thread.join(30)
            if not isinstance(outcome[0], Exception):
                moments["after the answer"] += 1
            retry = deliver(port, batch)
            # Killed before its commit, the retry stores the batch; after it, the retry finds it all
            # stored and charges nothing. Never a part, never twice.
            assert (retry.accepted, retry.duplicates) in ((300, 0), (0, 300))
            moments["before commit" if retry.accepted else "after commit"] += 1
            assert UsageEvent.objects.filter(event_id__startswith=f"random{round_}-").count() == 300
    faults["gunicorn kills by moment"] = dict(moments)
    assert_books_balance(key, sent)


def test_a_celery_worker_killed_during_usage_aggregate_the_rollups_equal_the_events(tmp_path, funded):
    _raw, key = funded
    broker = RedisServer(tmp_path)
    broker.start()
    first, second = events_for(key, "a", 200), events_for(key, "b", 200)
    usage_report(first)
    usage_aggregate()  # the hour's rollup exists; the next batch adds to it
    usage_report(second)
    rollup = UsageRollup.objects.get()
    before = (rollup.requests, rollup.cost)
    env = django_env(database_url=database_url(), redis_url=os.environ["REDIS_URL"])
    worker_args = [sys.executable, "-m", "celery", "-A", "console", "-b", broker.url, "worker", "--pool=solo",
                   "--without-heartbeat", "--without-mingle", "--without-gossip", "-l", "INFO"]
    log = tmp_path / "celery.log"
    sender = Celery(broker=broker.url)
    try:
        with row_locked("billing_usagerollup", "id", rollup.pk):
            worker = start(worker_args, log, cwd=ROOT, env=env)
            sender.send_task("billing.usage_aggregate")
            backend = wait_for_lock_waiter(timeout=60)  # the worker is folding, inside its transaction
            kill(worker.pid)
            faults["injected"] += 1
            worker.wait(10)
        wait_backend_gone(backend)
        rollup.refresh_from_db()
        assert (rollup.requests, rollup.cost) == before  # nothing half-folded
        assert UsageBatch.objects.filter(folded_at__isnull=True).count() == 1
        # The next run (beat sends one every minute) folds what the killed one left.
        worker = start(worker_args, log, cwd=ROOT, env=env)
        sender.send_task("billing.usage_aggregate")
        deadline = time.monotonic() + 60
        while UsageBatch.objects.filter(folded_at__isnull=True).exists():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        stop(worker)
    finally:
        sender.close()
        broker.stop()
    rollups_equal_events()
    assert UsageRollup.objects.get().requests == 400
    assert_books_balance(key, first + second)


def test_redis_killed_mid_run_authorize_fails_open_then_limits_again(tmp_path, funded):
    raw, key = funded
    Project.objects.filter(pk=key.project_id).update(tpm_limit=3000)
    redis = RedisServer(tmp_path)
    redis.start()
    sent: list[dict[str, Any]] = []
    try:
        with gunicorn(tmp_path, database=database_url(), redis=redis.url) as (port, _master):
            assert [authorize(port, raw, 1000).status for _ in range(4)] == [200, 200, 200, 429]
            redis.kill()
            faults["injected"] += 1
            during = [authorize(port, raw, 1000) for _ in range(6)]
            assert [a.status for a in during] == [200] * 6  # fail open: the window would say 429
            batch = events_for(key, "outage", 100)
            sent += batch
            assert deliver(port, batch).accepted == 100  # usage still lands (its TPM correction is skipped)
            ready = call(port, "GET", "/readyz").body
            assert ready["rate_limiter"]["failures"] >= 6
            assert ready["checks"]["rate_limiter"].startswith("error")
            assert ready["checks"]["database"] == "ok"

            redis.start()  # back, on the same port, empty
            deadline = time.monotonic() + 20
            statuses: list[int] = []
            while time.monotonic() < deadline and 429 not in statuses:
                statuses.append(authorize(port, raw, 1000).status)
                time.sleep(0.1)
            assert statuses[-1] == 429  # limiting again, without a restart
            assert call(port, "GET", "/readyz").body["checks"]["rate_limiter"] == "ok"
    finally:
        redis.stop()
    assert_books_balance(key, sent)


def test_postgresql_unreachable_authorize_fails_closed_and_recovers_by_itself(tmp_path, funded):
    raw, key = funded
    db = connection.settings_dict
    proxy = CuttableProxy(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))
    sent: list[dict[str, Any]] = []
    try:
        with gunicorn(tmp_path, database=database_url(host="127.0.0.1", port=proxy.port),
                      redis=os.environ["REDIS_URL"]) as (port, master):
            assert authorize(port, raw, 10).status == 200
            worker = the_worker(master)

            # Cut while a batch is inside its transaction.
            batch = events_for(key, "cut", 300)
            sent += batch
            with row_locked("billing_billingaccount", "organization_id", key.organization_id):
                thread, outcome = send_in_background(port, batch)
                wait_for_lock_waiter()
                proxy.cut()
                faults["injected"] += 1
                thread.join(30)
            assert outcome[0].status == 503 and outcome[0].body["error"]["code"] == "service_unavailable"

            # Unreachable: nothing is authorized, in the contract's JSON.
            denied = authorize(port, raw, 10)
            assert denied.status == 503
            assert denied.body["error"]["code"] == "service_unavailable"
            assert json.loads(denied.headers["x-gateway-error"]) == denied.body
            assert denied.headers["retry-after"] == "1"
            assert call(port, "POST", "/api/v1/gateway/usage", body={"events": batch}).status == 503

            proxy.restore()  # back: the same worker answers again, nobody restarted anything
            assert authorize(port, raw, 10).status == 200
            assert the_worker(master) == worker
            retry = deliver(port, batch)
            assert (retry.accepted, retry.duplicates) == (300, 0)
    finally:
        proxy.close()
    assert_books_balance(key, sent)
