"""Usage ingest: events/s through POST /api/v1/gateway/usage in batches of 1000 (under gunicorn)
vs PostgreSQL COPY of the same rows into the events table, batch by batch, measured in the same
run. Target: at least 0.3x.

The API does per event what COPY does not: validation, duplicate detection, pricing, and per
batch a ledger charge with the balance row lock and the spend counters, all in one transaction.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from common import GATEWAY_TOKEN, cleanup, django_setup, dumps, gunicorn, paired_ratio, request, seed, verdict

BATCH = 1000
BATCHES = int(os.environ.get("BENCH_BATCHES", "10"))
SENDERS = 2  # a gateway sends batches concurrently


def events(key_id: str, model: str, count: int) -> list[dict[str, object]]:
    tag = uuid.uuid4().hex[:8]
    now = datetime.now(tz=UTC)
    return [
        {
            "id": f"bench-{tag}-{n}",
            "key_id": key_id,
            "model": model,
            "input_tokens": 500 + n % 1000,
            "output_tokens": 100 + n % 300,
            "occurred_at": (now - timedelta(milliseconds=n)).isoformat(),
        }
        for n in range(count)
    ]


def main() -> None:
    django_setup()
    from django.db import connection, connections

    from billing.models import UsageBatch, UsageEvent
    from billing.money import usage_cost

    data = seed()
    connections.close_all()
    headers = {"X-Gateway-Token": GATEWAY_TOKEN, "Content-Type": "application/json"}

    def through_api(port: int) -> float:
        bodies = [dumps({"events": events(data.key_id, data.model, BATCH)}) for _ in range(BATCHES)]

        def send(body: bytes) -> int:
            status, answer = request(port, "POST", "/api/v1/gateway/usage", headers=headers, body=body)
            assert status == 200, answer
            return int(json.loads(answer)["accepted"])

        started = time.perf_counter()
        with ThreadPoolExecutor(SENDERS) as pool:
            accepted = sum(pool.map(send, bodies))
        elapsed = time.perf_counter() - started
        assert accepted == BATCH * BATCHES, accepted
        return accepted / elapsed

    def through_copy() -> float:
        """The same rows (costed beforehand, untimed) written with COPY, one transaction per batch."""
        from projects.models import APIKey

        key = APIKey.objects.get(public_id=data.key_id)
        batch = UsageBatch.objects.create(events=0, folded_at=datetime.now(tz=UTC))
        rows = []
        for _ in range(BATCHES):
            chunk = []
            for event in events(data.key_id, data.model, BATCH):
                cost = usage_cost(input_tokens=int(event["input_tokens"]), output_tokens=int(event["output_tokens"]),
                                  input_price=Decimal("1"), output_price=Decimal("2"))
                chunk.append((event["id"], batch.pk, key.organization_id, key.project_id, key.pk, event["model"],
                              event["input_tokens"], event["output_tokens"], cost, event["occurred_at"]))
            rows.append(chunk)
        columns = ("event_id, batch_id, organization_id, project_id, api_key_id, model, input_tokens, "
                   "output_tokens, cost, occurred_at")
        raw = connection.connection  # psycopg's own connection: Django's cursor has no COPY
        started = time.perf_counter()
        for chunk in rows:
            with raw.transaction(), raw.cursor() as cursor, \
                    cursor.copy(f"COPY {UsageEvent._meta.db_table} ({columns}) FROM STDIN") as copy:
                for row in chunk:
                    copy.write_row(row)
        elapsed = time.perf_counter() - started
        return BATCH * BATCHES / elapsed

    connection.ensure_connection()
    print(f"{BATCHES} batches of {BATCH} events per measurement; API: gunicorn, {SENDERS} concurrent senders "
          "(events/s)")
    try:
        with gunicorn() as port:
            through_api(port)  # warm up
            ratio = paired_ratio(lambda: through_api(port), through_copy, rounds=3,
                                 label="usage API", base_label="COPY")
    finally:
        cleanup(data)
    print(verdict("usage API / COPY (median of rounds)", ratio, 0.3))


if __name__ == "__main__":
    main()
