"""Usage at scale, on PostgreSQL, every figure a ratio against a baseline of the same run.

- P2: ingest through POST /api/v1/gateway/usage (gunicorn, 1000-event batches) into a database
  whose events table already holds BENCH_HISTORY_EVENTS (default 10 M) events over 400 days,
  against the same ingest into an empty one, measured in turns. Target >= 0.8x.
  (Against COPY: `bench/ingest.py` run on the history database, see the Makefile.)
- P4: usage_aggregate folding BENCH_FOLD_EVENTS (1 M) new events, against a hand-written
  INSERT ... SELECT ... GROUP BY ... ON CONFLICT of the same rows into a copy of the hourly table.
  Target >= 0.5x.
- P6: the org overview, its usage panel and the 90-day usage page for an organization with the
  10 M events of history, against one with 10 k; and for one with 1,000 keys x 20 models active
  every hour for 90 days, against one with 4 keys. Target <= 1.5x.

All data is generated in SQL with generate_series (minutes, not hours). The two databases are
`<DATABASE_URL's name>_history` and `..._empty`; they are kept for the next run unless
BENCH_KEEP=0, and rebuilt when their size differs from what is asked.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from common import ENV, GATEWAY_TOKEN, ROOT, dumps, gunicorn, paired_ratio, request, verdict

HISTORY = int(os.environ.get("BENCH_HISTORY_EVENTS", "10000000"))
SMALL_HISTORY = 10_000
FOLD = int(os.environ.get("BENCH_FOLD_EVENTS", "1000000"))
BIG_KEYS, BIG_MODELS, SMALL_KEYS = 1000, 20, 4
BATCH, BATCHES, SENDERS = 1000, int(os.environ.get("BENCH_BATCHES", "20")), 2
BASE_URL = ENV["DATABASE_URL"]
HISTORY_URL = BASE_URL.rsplit("/", 1)[0] + "/" + BASE_URL.rsplit("/", 1)[1] + "_history"
EMPTY_URL = BASE_URL.rsplit("/", 1)[0] + "/" + BASE_URL.rsplit("/", 1)[1] + "_empty"


def psql(url: str, sql: str) -> str:
    return subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql], check=True, capture_output=True,
                          text=True).stdout.strip()


def ensure_database(url: str, kind: str) -> None:
    """Create the database, or drop and re-create one built for another history size."""
    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    if psql(admin, f"SELECT 1 FROM pg_database WHERE datname = '{name}'"):  # noqa: S608 -- our own database name
        built = psql(url, "SELECT string_agg(name, ',') FROM bench_state") if psql(
            url, "SELECT to_regclass('bench_state') IS NOT NULL") == "t" else ""
        if built == f"{kind}:{HISTORY}":
            return
        psql(admin, f'DROP DATABASE "{name}"')
    psql(admin, f'CREATE DATABASE "{name}"')


# --- building a database (run in a subprocess whose Django points at it) -------------------------


def prepare(kind: str) -> dict[str, object]:
    """Migrate, seed the organizations this database needs, generate their history; returns ids."""
    from common import django_setup, seed

    django_setup()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_state (name text PRIMARY KEY, value jsonb)")
        cursor.execute("SELECT value FROM bench_state WHERE name = %s", [f"{kind}:{HISTORY}"])
        row = cursor.fetchone()
    if row:
        return dict(json.loads(row[0]) if isinstance(row[0], str) else row[0])
    ingest = seed()
    state: dict[str, object] = {"ingest": ingest.__dict__}
    if kind == "history":
        started = time.monotonic()
        state["history"] = _history_org(HISTORY, keys=SMALL_KEYS, models=3, days=400)
        print(f"  {HISTORY:,} events of history generated in {time.monotonic() - started:.0f} s", flush=True)
        state["small"] = _history_org(SMALL_HISTORY, keys=SMALL_KEYS, models=3, days=400)
        started = time.monotonic()
        state["wide"] = _wide_org(keys=BIG_KEYS, models=BIG_MODELS, days=90)
        state["narrow"] = _wide_org(keys=SMALL_KEYS, models=3, days=90)
        print(f"  rollups of {BIG_KEYS} keys x {BIG_MODELS} models x 90 days in {time.monotonic() - started:.0f} s",
              flush=True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        cursor.execute("INSERT INTO bench_state VALUES (%s, %s)", [f"{kind}:{HISTORY}", json.dumps(state)])
    return state


def _org_with_keys(keys: int) -> tuple[object, list[int]]:
    from common import seed

    from projects.keys import generate_raw_key, key_digest, key_hint
    from projects.models import APIKey, Project

    base = seed()
    from orgs.models import Organization

    org = Organization.objects.get(pk=base.organization_pk)
    projects = [Project.objects.get(pk=base.project_pk),
                *(Project.objects.create(organization=org, name=f"Bench {n}") for n in range(1, min(10, keys)))]
    creator = APIKey.objects.get(public_id=base.key_id).created_by
    created = [APIKey(organization=org, project=projects[n % len(projects)], created_by=creator, name=f"k{n}",
                      digest=key_digest(raw), hint=key_hint(raw))
               for n, raw in enumerate(generate_raw_key() for _ in range(keys - 1))]
    APIKey.objects.bulk_create(created)
    key_ids = list(APIKey.objects.filter(organization=org).order_by("id").values_list("id", flat=True))
    return base, key_ids


def _history_org(events: int, *, keys: int, models: int, days: int) -> dict[str, object]:
    """`events` events spread evenly over the last `days` days, their partitions, keys and rollups."""
    from django.db import connection

    from billing.services.partitions import _create_partition, month_start, next_month, usage_partitions

    base, key_ids = _org_with_keys(keys)
    now = datetime.now(tz=UTC)
    existing = {p.month for p in usage_partitions()}
    month = month_start(now - timedelta(days=days))
    with connection.cursor() as cursor:
        while month <= month_start(now):
            if month not in existing:
                _create_partition(cursor, month)
            month = next_month(month)
        cursor.execute("INSERT INTO billing_usagebatch (received_at, events, folded_at) VALUES (now(), %s, now()) "
                       "RETURNING id", [events])
        batch = cursor.fetchone()[0]
        # Generated rows reference rows just made: skip the per-row foreign-key triggers (40 M checks).
        cursor.execute("SET session_replication_role = replica")
        tag = uuid.uuid4().hex[:6]
        cursor.execute(
            """
            INSERT INTO billing_usageevent (event_id, batch_id, organization_id, project_id, api_key_id, model,
                input_tokens, output_tokens, cost, occurred_at)
            SELECT %(tag)s || g, %(batch)s, k.organization_id, k.project_id, k.id, 'bench-model-' || (g %% %(models)s),
                   500 + g %% 1000, 100 + g %% 300, 0.000700 + (g %% 300) * 0.000002,
                   now() - (g * (%(days)s * 86400.0 / %(events)s)) * interval '1 second'
            FROM generate_series(1, %(events)s) g
            JOIN projects_apikey k ON k.id = (%(keys)s::bigint[])[1 + g %% %(nkeys)s]
            """,
            {"tag": f"h{tag}-", "batch": batch, "models": models, "days": days, "events": events, "keys": key_ids,
             "nkeys": len(key_ids)},
        )
        # Idempotency keys of the events a re-send may still repeat (the accepted age).
        cursor.execute(
            "INSERT INTO billing_usageeventkey (event_id, digest, occurred_at) "
            "SELECT event_id, decode(md5(event_id), 'hex'), occurred_at FROM billing_usageevent "
            "WHERE batch_id = %s AND occurred_at > now() - interval '31 days'", [batch],
        )
        _rollups_from_events(cursor, batch)
        cursor.execute("SET session_replication_role = DEFAULT")
    return {"org": base.organization_pk, "events": events}


def _rollups_from_events(cursor: object, batch: int) -> None:
    cursor.execute(  # type: ignore[attr-defined]
        """
        INSERT INTO billing_usagerollup (organization_id, project_id, api_key_id, model, hour, requests,
            input_tokens, output_tokens, cost)
        SELECT organization_id, project_id, api_key_id, model, date_trunc('hour', occurred_at), count(*),
               sum(input_tokens), sum(output_tokens), sum(cost)
        FROM billing_usageevent WHERE batch_id = %s GROUP BY 1, 2, 3, 4, 5
        """, [batch],
    )
    from billing.services.rollups import _DAILY_LEVELS

    for model, columns, _unique in _DAILY_LEVELS:
        cursor.execute(  # type: ignore[attr-defined]
            f"""
            INSERT INTO {model._meta.db_table} ({columns}, day, requests, input_tokens, output_tokens, cost)
            SELECT {columns}, (occurred_at AT TIME ZONE 'UTC')::date, count(*), sum(input_tokens),
                   sum(output_tokens), sum(cost)
            FROM billing_usageevent WHERE batch_id = %s GROUP BY {columns}, (occurred_at AT TIME ZONE 'UTC')::date
            """, [batch],  # noqa: S608 -- fixed identifiers
        )


def _wide_org(*, keys: int, models: int, days: int) -> dict[str, object]:
    """The rollups usage_aggregate would have made for `keys` keys x `models` models active every
    hour of `days` days (12 calls an hour each), in SQL: every daily level, and the hourly one for
    the last 7 days (keys x models x 168 rows: what a page reading hours would pay for)."""
    from django.db import connection

    base, key_ids = _org_with_keys(keys)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO billing_usagerollup (organization_id, project_id, api_key_id, model, hour, requests,
                input_tokens, output_tokens, cost)
            SELECT k.organization_id, k.project_id, k.id, 'bench-model-' || m, date_trunc('hour', now()) - h * interval
                   '1 hour', 12, 12 * 600, 12 * 150, 12 * 0.0009
            FROM projects_apikey k, generate_series(0, %(models)s - 1) m, generate_series(0, 7 * 24 - 1) h
            WHERE k.id = ANY(%(keys)s)
            """, {"models": models, "keys": key_ids},
        )
        for table, columns, select in (
            ("billing_usagedailyrollup", "organization_id, project_id, model",
             "k.organization_id, k.project_id, 'bench-model-' || m"),
            ("billing_usageprojectdailyrollup", "organization_id, project_id", "k.organization_id, k.project_id"),
            ("billing_usagemodeldailyrollup", "organization_id, model", "k.organization_id, 'bench-model-' || m"),
        ):
            cursor.execute(
                f"""
                INSERT INTO {table} ({columns}, day, requests, input_tokens, output_tokens, cost)
                SELECT {select}, current_date - d, 288 * count(*), 288 * count(*) * 600, 288 * count(*) * 150,
                       288 * count(*) * 0.0009
                FROM projects_apikey k, generate_series(0, %(models)s - 1) m, generate_series(0, %(days)s - 1) d
                WHERE k.id = ANY(%(keys)s) GROUP BY {select}, current_date - d
                """, {"models": models, "days": days, "keys": key_ids},  # noqa: S608 -- fixed identifiers
            )
        cursor.execute(
            """
            INSERT INTO billing_usagekeydailyrollup (organization_id, project_id, api_key_id, day, requests,
                input_tokens, output_tokens, cost)
            SELECT k.organization_id, k.project_id, k.id, current_date - d, 288 * %(models)s, 288 * %(models)s * 600,
                   288 * %(models)s * 150, 288 * %(models)s * 0.0009
            FROM projects_apikey k, generate_series(0, %(days)s - 1) d WHERE k.id = ANY(%(keys)s)
            """, {"models": models, "days": days, "keys": key_ids},
        )
    return {"org": base.organization_pk, "keys": keys}


# --- P2: ingest into a big table against an empty one ---------------------------------------------


def batches_for(key_id: str, model: str) -> list[bytes]:
    tag, now = uuid.uuid4().hex[:10], datetime.now(tz=UTC)
    return [dumps({"events": [
        {"id": f"p2-{tag}-{b}-{n}", "key_id": key_id, "model": model, "input_tokens": 500 + n % 1000,
         "output_tokens": 100 + n % 300, "occurred_at": (now - timedelta(milliseconds=n)).isoformat()}
        for n in range(BATCH)]}) for b in range(BATCHES)]


def ingest_rate(port: int, ingest: dict[str, object]) -> float:
    headers = {"X-Gateway-Token": GATEWAY_TOKEN, "Content-Type": "application/json"}
    bodies = batches_for(str(ingest["key_id"]), str(ingest["model"]))

    def send(body: bytes) -> int:
        status, answer = request(port, "POST", "/api/v1/gateway/usage", headers=headers, body=body)
        assert status == 200, answer
        return int(json.loads(answer)["accepted"])

    started = time.perf_counter()
    with ThreadPoolExecutor(SENDERS) as pool:
        accepted = sum(pool.map(send, bodies))
    assert accepted == BATCH * BATCHES
    return accepted / (time.perf_counter() - started)


# --- P4: folding against a hand-written statement -----------------------------------------------


def fold_ratio(state: dict[str, object]) -> float:
    from django.db import connection

    from billing.services.rollups import usage_aggregate

    ingest = state["ingest"]
    assert isinstance(ingest, dict)
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM projects_apikey WHERE public_id = %s", [ingest["key_id"]])
        key = cursor.fetchone()[0]
        cursor.execute("SELECT coalesce(max(id), 0) FROM billing_usagebatch")
        first_batch = cursor.fetchone()[0] + 1
        # FOLD new events in batches of 1000, none folded yet, in the last 12 hours.
        cursor.execute(
            "INSERT INTO billing_usagebatch (received_at, events, first_occurred_at) "
            "SELECT now(), 1000, now() - interval '12 hours' FROM generate_series(1, %s)", [FOLD // 1000],
        )
        cursor.execute(
            """
            INSERT INTO billing_usageevent (event_id, batch_id, organization_id, project_id, api_key_id, model,
                input_tokens, output_tokens, cost, occurred_at)
            SELECT 'p4-' || %(tag)s || g, %(first)s + (g - 1) / 1000, k.organization_id, k.project_id, k.id,
                   'bench-model-' || (g %% 3), 500, 100, 0.0007, now() - (g %% 43200) * interval '1 second'
            FROM generate_series(1, %(n)s) g, projects_apikey k WHERE k.id = %(key)s
            """, {"tag": uuid.uuid4().hex[:6], "first": first_batch, "n": FOLD, "key": key},
        )
    hand = """
        INSERT INTO bench_rollup_copy (organization_id, project_id, api_key_id, model, hour, requests,
            input_tokens, output_tokens, cost)
        SELECT organization_id, project_id, api_key_id, model, date_trunc('hour', occurred_at), count(*),
               sum(input_tokens), sum(output_tokens), sum(cost)
        FROM billing_usageevent WHERE batch_id >= %s GROUP BY 1, 2, 3, 4, 5
        ON CONFLICT (api_key_id, model, hour) DO UPDATE SET requests = bench_rollup_copy.requests + excluded.requests,
            input_tokens = bench_rollup_copy.input_tokens + excluded.input_tokens,
            output_tokens = bench_rollup_copy.output_tokens + excluded.output_tokens,
            cost = bench_rollup_copy.cost + excluded.cost
    """

    def baseline() -> float:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS bench_rollup_copy")
            cursor.execute("CREATE TABLE bench_rollup_copy (LIKE billing_usagerollup INCLUDING ALL)")
            started = time.perf_counter()
            cursor.execute(hand, [first_batch])
            elapsed = time.perf_counter() - started
            cursor.execute("DROP TABLE bench_rollup_copy")
        return elapsed

    before = baseline()
    started = time.perf_counter()
    result = usage_aggregate(max_steps=10_000)
    ours = time.perf_counter() - started
    after = baseline()
    assert result.events >= FOLD, result
    base = (before + after) / 2
    print(f"  hand-written statement {FOLD / base:,.0f} events/s (runs: {before:.2f} s, {after:.2f} s); "
          f"usage_aggregate {FOLD / ours:,.0f} events/s ({ours:.2f} s, {result.batches} batches)")
    return base / ours


# --- P6: pages ------------------------------------------------------------------------------------


def page_times(org_pk: int) -> dict[str, float]:
    from django.test import Client

    from console.models import User
    from orgs.models import Membership, Organization

    org = Organization.objects.get(pk=org_pk)
    admin = User.objects.get(pk=Membership.objects.filter(organization=org).values_list("user_id", flat=True)[0])
    client = Client(HTTP_HOST="localhost")
    client.force_login(admin)
    urls = {
        "overview": (f"/o/{org.public_id}/", {}),
        "usage panel": (f"/o/{org.public_id}/usage/?embed=overview", {"HTTP_HX_REQUEST": "true"}),
        "usage 90 days": (f"/o/{org.public_id}/usage/?days=90", {}),
    }
    times = {}
    for name, (url, headers) in urls.items():
        samples = []
        for _ in range(15):
            started = time.perf_counter()
            response = client.get(url, secure=True, **headers)
            samples.append(time.perf_counter() - started)
            assert response.status_code == 200, (url, response.status_code)
        times[name] = min(samples[2:])  # the page's own work: the least disturbed by the shared machine
    return times


def pages_ratio(label: str, big: int, small: int) -> float:
    from django.conf import settings
    from django.test.utils import override_settings

    # In-process, without collectstatic's manifest: the pages' own work is what is timed.
    plain = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    storages = {**settings.STORAGES, "staticfiles": plain}
    with override_settings(STORAGES=storages):
        return _pages_ratio(big, small)


def _pages_ratio(big: int, small: int) -> float:
    ratios = []
    for round_ in range(3):
        small_times, big_times = page_times(small), page_times(big)
        total_small, total_big = sum(small_times.values()), sum(big_times.values())
        ratios.append(total_big / total_small)
        detail = ", ".join(f"{name} {big_times[name] * 1000:.1f} vs {small_times[name] * 1000:.1f} ms"
                           for name in small_times)
        print(f"  round {round_ + 1}: {detail} -> {total_big / total_small:.2f}x")
    return statistics.median(ratios)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--prepare":
        print("STATE " + json.dumps(prepare(sys.argv[2])))
        return
    states = {}
    for kind, url in (("empty", EMPTY_URL), ("history", HISTORY_URL)):
        ensure_database(url, kind)
        print(f"preparing {url.rsplit('/', 1)[1]} ({kind})", flush=True)
        out = subprocess.run([sys.executable, __file__, "--prepare", kind], env={**os.environ, "DATABASE_URL": url},
                             check=True, stdout=subprocess.PIPE, text=True, cwd=ROOT).stdout
        line = next(line for line in out.splitlines() if line.startswith("STATE "))
        print("\n".join(line for line in out.splitlines() if not line.startswith("STATE ")), flush=True)
        states[kind] = json.loads(line[6:])
    print(psql(HISTORY_URL, "SELECT 'history database: ' || count(*) || ' events, ' || "
                            "pg_size_pretty(pg_database_size(current_database())) FROM billing_usageevent"))

    print(f"P2: {BATCHES} batches of {BATCH} events, {SENDERS} senders, into {HISTORY:,} events vs an empty table")
    with gunicorn(env={"DATABASE_URL": HISTORY_URL}) as full, gunicorn(env={"DATABASE_URL": EMPTY_URL}) as empty:
        ingest_rate(full, states["history"]["ingest"])  # warm up
        ingest_rate(empty, states["empty"]["ingest"])
        p2 = paired_ratio(lambda: ingest_rate(full, states["history"]["ingest"]),
                          lambda: ingest_rate(empty, states["empty"]["ingest"]), rounds=7,
                          label="10M table", base_label="empty table")

    os.environ["DATABASE_URL"] = HISTORY_URL
    import django

    django.setup()
    history = states["history"]
    print(f"P4: usage_aggregate folding {FOLD:,} new events vs INSERT ... SELECT ... GROUP BY ... ON CONFLICT")
    p4 = fold_ratio(history)
    print(f"P6: org overview + usage panel + 90-day usage page, {HISTORY:,} events in history vs {SMALL_HISTORY:,}")
    p6_history = pages_ratio("history", int(history["history"]["org"]), int(history["small"]["org"]))
    print(f"P6: the same pages, {BIG_KEYS} keys x {BIG_MODELS} models x 90 days vs {SMALL_KEYS} keys")
    p6_keys = pages_ratio("keys", int(history["wide"]["org"]), int(history["narrow"]["org"]))

    print(verdict(f"P2 ingest into {HISTORY:,} events / into an empty table", p2, 0.8))
    print(verdict("P4 usage_aggregate / hand-written INSERT ... SELECT ... ON CONFLICT", p4, 0.5))
    print(verdict(f"P6 pages, {HISTORY:,} / {SMALL_HISTORY:,} events of history", p6_history, 1.5,
                  higher_is_better=False))
    print(verdict(f"P6 pages, {BIG_KEYS} keys x {BIG_MODELS} models / {SMALL_KEYS} keys", p6_keys, 1.5,
                  higher_is_better=False))
    if os.environ.get("BENCH_KEEP", "1") == "0":
        admin = BASE_URL.rsplit("/", 1)[0] + "/postgres"
        from django.db import connections

        connections.close_all()
        for url in (HISTORY_URL, EMPTY_URL):
            psql(admin, f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}"')


if __name__ == "__main__":
    main()
