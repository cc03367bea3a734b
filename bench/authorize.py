"""Authorize throughput under gunicorn (PostgreSQL + Redis) vs a hello-world JSON view (/healthz)
under the same gunicorn settings, measured in the same run. Target: at least 0.5x.

Both run in the application gunicorn serves (console.wsgi): /healthz on the pages' middleware stack,
like any view, and authorize on the gateway API's own lean stack (console/handlers.py), as deployed.
"""

from __future__ import annotations

import os

from common import GATEWAY_TOKEN, WORKERS, cleanup, django_setup, gunicorn, paired_ratio, seed, throughput, verdict

SECONDS = int(os.environ.get("BENCH_SECONDS", "4"))


def main() -> None:
    django_setup()
    data = seed()
    from django.db import connections

    connections.close_all()  # gunicorn forks its own
    headers = {
        "Authorization": f"Bearer {data.raw_key}",
        "X-Gateway-Token": GATEWAY_TOKEN,
        "X-Estimated-Tokens": "1",
    }
    failures: dict[str, int] = {}

    def measure(name: str, port: int, path: str, extra: dict[str, str] | None = None) -> float:
        rate, errors = throughput(port, path, headers=extra, seconds=SECONDS)
        failures[name] = failures.get(name, 0) + errors
        return rate

    print(f"gunicorn: {WORKERS} sync workers; wrk, 10 connections, {SECONDS} s per measurement (req/s)")
    try:
        with gunicorn() as port:
            measure("warm-up", port, "/api/v1/gateway/authorize", headers)
            ratio = paired_ratio(
                lambda: measure("authorize", port, "/api/v1/gateway/authorize", headers),
                lambda: measure("healthz", port, "/healthz"),
                label="authorize", base_label="hello-world JSON",
            )
    finally:
        cleanup(data)
    assert failures == {"warm-up": 0, "authorize": 0, "healthz": 0}, f"answers other than 200: {failures}"
    print(verdict("authorize / hello-world (median of rounds)", ratio, 0.5))


if __name__ == "__main__":
    main()
