"""Hot-organization ingest: 8 gateways posting 1000-event batches at once for ONE organization
(one project, one key: every batch charges the same balance and spend counters) against 8
gateways posting for 8 different organizations, through POST /api/v1/gateway/usage under
gunicorn, measured in turns in the same run. Target: at least 0.6x.

Afterwards both worlds are checked: ledger usage = the sum of the events' costs and the balance =
the sum of the ledger, per organization, to the micro-unit.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from common import GATEWAY_TOKEN, Seed, cleanup, django_setup, dumps, gunicorn, paired_ratio, request, seed, verdict

BATCH = 1000
SENDERS = 8
BATCHES_PER_SENDER = int(os.environ.get("BENCH_HOT_BATCHES", "3"))


def batch_body(key_id: str, model: str) -> bytes:
    tag = uuid.uuid4().hex[:12]
    now = datetime.now(tz=UTC)
    return dumps({"events": [
        {"id": f"hot-{tag}-{n}", "key_id": key_id, "model": model, "input_tokens": 500 + n % 1000,
         "output_tokens": 100 + n % 300, "occurred_at": (now - timedelta(milliseconds=n)).isoformat()}
        for n in range(BATCH)
    ]})


def main() -> None:
    django_setup()
    from django.db import connections

    hot = seed()
    spread = [seed() for _ in range(SENDERS)]
    connections.close_all()
    headers = {"X-Gateway-Token": GATEWAY_TOKEN, "Content-Type": "application/json"}

    def run(port: int, targets: list[Seed]) -> float:
        """Events/s: SENDERS threads, each posting its batches one after another."""
        bodies = [[batch_body(t.key_id, t.model) for _ in range(BATCHES_PER_SENDER)] for t in targets]

        def sender(mine: list[bytes]) -> int:
            accepted = 0
            for body in mine:
                status, answer = request(port, "POST", "/api/v1/gateway/usage", headers=headers, body=body)
                assert status == 200, answer
                accepted += int(json.loads(answer)["accepted"])
            return accepted

        started = time.perf_counter()
        with ThreadPoolExecutor(SENDERS) as pool:
            accepted = sum(pool.map(sender, bodies))
        elapsed = time.perf_counter() - started
        assert accepted == BATCH * BATCHES_PER_SENDER * SENDERS, accepted
        return accepted / elapsed

    print(f"{SENDERS} senders x {BATCHES_PER_SENDER} batches of {BATCH} events per measurement (events/s)")
    try:
        with gunicorn() as port:
            run(port, spread)  # warm up
            ratio = paired_ratio(lambda: run(port, [hot] * SENDERS), lambda: run(port, spread), rounds=3,
                                 label="1 org", base_label="8 orgs")
        check_books([hot, *spread])
    finally:
        for data in [hot, *spread]:
            cleanup(data)
    print(verdict("hot organization / 8 organizations (median of rounds)", ratio, 0.6))


def check_books(seeds: list[Seed]) -> None:
    from django.db.models import Sum

    from billing.models import BillingAccount, LedgerEntry, LedgerKind, UsageEvent

    for data in seeds:
        entries = LedgerEntry.objects.filter(organization_id=data.organization_pk)
        usage = -(entries.filter(kind=LedgerKind.USAGE).aggregate(t=Sum("amount"))["t"] or 0)
        costs = UsageEvent.objects.filter(organization_id=data.organization_pk).aggregate(t=Sum("cost"))["t"] or 0
        balance = BillingAccount.objects.get(organization_id=data.organization_pk).balance
        assert usage == costs, (data.organization_pk, usage, costs)
        assert balance == entries.aggregate(t=Sum("amount"))["t"], (data.organization_pk, balance)
    print(f"books exact for {len(seeds)} organizations: ledger usage = event costs, balance = sum of ledger")


if __name__ == "__main__":
    main()
