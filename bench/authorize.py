"""Authorize throughput under gunicorn (PostgreSQL + Redis) vs a hello-world JSON view (/healthz)
under the same gunicorn settings, measured in the same run. Target: at least 0.5x.

gunicorn serves console.wsgi's application: /healthz on the middleware stack every page and view
has, authorize on the gateway API's own lean stack (console/handlers.py), as deployed. For
reference the same hello-world is also measured on that lean stack (bench/lean_hello_wsgi.py): the
ratio against it shows what authorize costs beyond the stack it runs on.
"""

from __future__ import annotations

import os

from common import GATEWAY_TOKEN, WORKERS, cleanup, django_setup, gunicorn, paired_ratio, seed, throughput, verdict
from lean_hello_wsgi import LEAN_HELLO

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
    os.environ["CONSOLE_CONCURRENCY_LEASE_SECONDS"] = "10"  # nothing releases them in a throughput test
    try:
        with gunicorn(app="lean_hello_wsgi") as port:
            measure("warm-up", port, "/api/v1/gateway/authorize", headers)
            ratio = paired_ratio(
                lambda: measure("authorize", port, "/api/v1/gateway/authorize", headers),
                lambda: measure("hello-world", port, "/healthz"),
                label="authorize", base_label="hello-world JSON",
            )
            print("for reference, the same hello-world on the gateway's lean stack:")
            lean_ratio = paired_ratio(
                lambda: measure("authorize", port, "/api/v1/gateway/authorize", headers),
                lambda: measure("hello-world (lean stack)", port, LEAN_HELLO),
                rounds=3, label="authorize", base_label="hello-world JSON (lean stack)",
            )
    finally:
        cleanup(data)
    assert not any(failures.values()), f"answers other than 200: {failures}"
    print(verdict("authorize / hello-world (median of rounds)", ratio, 0.5))
    print(f"for reference, authorize / hello-world on the gateway's lean stack: {lean_ratio:.2f}x")


if __name__ == "__main__":
    main()
