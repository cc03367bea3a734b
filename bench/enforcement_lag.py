"""Enforcement lag: from a usage batch that crosses a project's daily budget being accepted to the
first 403 from authorize, under gunicorn on PostgreSQL + Redis. Target: at most 1 s.

A poller calls authorize in a loop (as a gateway's traffic would) while another thread reports
the crossing batch; the lag is the end of the first 403 answer minus the moment the usage API
answered "accepted". Repeated on fresh projects; the worst run is what counts.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime

from common import GATEWAY_TOKEN, cleanup, django_setup, dumps, gunicorn, request, seed, verdict

RUNS = int(os.environ.get("BENCH_RUNS", "5"))


def one_run(port: int) -> float:
    data = seed(daily_budget="1.00")
    from django.db import connections

    connections.close_all()
    auth_headers = {"Authorization": f"Bearer {data.raw_key}", "X-Gateway-Token": GATEWAY_TOKEN,
                    "X-Estimated-Tokens": "1"}
    answers: list[tuple[float, int]] = []  # (answered at, status)
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            status, _body = request(port, "GET", "/api/v1/gateway/authorize", headers=auth_headers)
            answers.append((time.perf_counter(), status))

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.3)  # steady traffic first
    # 1,000,000 input tokens at $1/M = $1.00: reaches the $1.00 daily budget.
    event = {"id": f"lag-{uuid.uuid4().hex}", "key_id": data.key_id, "model": data.model,
             "input_tokens": 1_000_000, "output_tokens": 0, "occurred_at": datetime.now(tz=UTC).isoformat()}
    status, body = request(port, "POST", "/api/v1/gateway/usage",
                           headers={"X-Gateway-Token": GATEWAY_TOKEN, "Content-Type": "application/json"},
                           body=dumps({"events": [event]}))
    accepted_at = time.perf_counter()
    assert status == 200 and json.loads(body)["accepted"] == 1, body
    deadline = accepted_at + 10
    while time.perf_counter() < deadline and not any(s == 403 and t >= accepted_at for t, s in answers):
        time.sleep(0.001)
    stop.set()
    poller.join()
    cleanup(data)
    before = [s for t, s in answers if t < accepted_at]
    assert before and set(before) <= {200, 403}, before
    first_denied = min((t for t, s in answers if s == 403 and t >= accepted_at), default=None)
    if first_denied is None:
        raise AssertionError("authorize never denied the project within 10 s")
    return max(0.0, first_denied - accepted_at)


def main() -> None:
    django_setup()
    lags = []
    with gunicorn() as port:
        for n in range(1, RUNS + 1):
            lag = one_run(port)
            lags.append(lag)
            print(f"  run {n}: first 403 {lag * 1000:.1f} ms after the usage batch was accepted")
    worst = max(lags)
    print(f"median {statistics.median(lags) * 1000:.1f} ms, worst {worst * 1000:.1f} ms")
    print(verdict("worst enforcement lag", worst, 1.0, unit=" s", higher_is_better=False))


if __name__ == "__main__":
    main()
