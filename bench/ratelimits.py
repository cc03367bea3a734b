"""Authorize with every rate limit (the organization's concurrency, RPM, TPM and TPD, the project's
TPM and RPM: one Lua call) against authorize with TPM only (the path before, same gunicorn, same
data), measured in turns in the same run. Target: at least 0.85x.

Both servers run bench/ratelimit_wsgi.py: a rate tier whose limits are never reached, so no call
is denied and each does the whole check. Concurrency leases last 10 s here (nothing releases them
in a throughput test; in production the usage report or /release does).
"""

from __future__ import annotations

import os

from common import GATEWAY_TOKEN, WORKERS, cleanup, django_setup, gunicorn, paired_ratio, seed, throughput, verdict

SECONDS = int(os.environ.get("BENCH_SECONDS", "4"))


def main() -> None:
    django_setup()
    data = seed()
    from django.db import connections

    from projects.models import Project

    Project.objects.filter(pk=data.project_pk).update(tpm_limit=10**9, rpm_limit=10**9)  # the project's windows too
    connections.close_all()  # gunicorn forks its own
    headers = {"Authorization": f"Bearer {data.raw_key}", "X-Gateway-Token": GATEWAY_TOKEN,
               "X-Estimated-Tokens": "500"}
    failures: dict[str, int] = {}

    def measure(name: str, port: int) -> float:
        rate, errors = throughput(port, "/api/v1/gateway/authorize", headers=headers, seconds=SECONDS)
        failures[name] = failures.get(name, 0) + errors
        return rate

    print(f"gunicorn: {WORKERS} sync workers each; wrk, 10 connections, {SECONDS} s per measurement (req/s)")
    os.environ["CONSOLE_CONCURRENCY_LEASE_SECONDS"] = "10"
    try:
        with gunicorn(app="ratelimit_wsgi") as all_limits:
            os.environ["BENCH_TPM_ONLY"] = "1"
            with gunicorn(app="ratelimit_wsgi") as tpm_only:
                del os.environ["BENCH_TPM_ONLY"]
                measure("warm-up", all_limits)
                measure("warm-up", tpm_only)
                ratio = paired_ratio(
                    lambda: measure("all limits", all_limits),
                    lambda: measure("TPM only", tpm_only),
                    label="all four limits + project's", base_label="TPM only",
                )
    finally:
        cleanup(data)
    assert not any(failures.values()), f"answers other than 200: {failures}"
    print(verdict("authorize with all rate limits / TPM only (median of rounds)", ratio, 0.85))


if __name__ == "__main__":
    main()
