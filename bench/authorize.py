"""Authorize throughput under gunicorn (PostgreSQL + Redis) vs a hello-world JSON view (/healthz)
under the same gunicorn settings, measured in the same run. Target: at least 0.5x."""

from __future__ import annotations

import os

from common import GATEWAY_TOKEN, WORKERS, cleanup, django_setup, gunicorn, paired_ratio, seed, throughput, verdict

TOTAL = int(os.environ.get("BENCH_REQUESTS", "4000"))


def main() -> None:
    django_setup()
    data = seed()
    from django.db import connections

    connections.close_all()  # the load generator forks
    headers = {
        "Authorization": f"Bearer {data.raw_key}",
        "X-Gateway-Token": GATEWAY_TOKEN,
        "X-Estimated-Tokens": "1",
    }
    statuses: dict[str, dict[int, int]] = {}

    def measure(name: str, port: int, path: str, extra: dict[str, str] | None = None) -> float:
        rate, seen = throughput(port, path, headers=extra, total=TOTAL)
        for status, n in seen.items():
            statuses.setdefault(name, {})[status] = statuses.get(name, {}).get(status, 0) + n
        return rate

    print(f"gunicorn: {WORKERS} sync workers; {TOTAL} requests per measurement, a new connection each (req/s)")
    try:
        with gunicorn() as port:
            ratio = paired_ratio(
                lambda: measure("authorize", port, "/api/v1/gateway/authorize", headers),
                lambda: measure("healthz", port, "/healthz"),
                label="authorize", base_label="hello-world JSON",
            )
    finally:
        cleanup(data)
    assert set(statuses["authorize"]) == {200}, statuses
    assert set(statuses["healthz"]) == {200}, statuses
    print(verdict("authorize / hello-world (median of rounds)", ratio, 0.5))


if __name__ == "__main__":
    main()
