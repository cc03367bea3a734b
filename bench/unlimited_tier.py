"""For the throughput benchmarks' WSGI modules: one rate tier whose limits are never reached, so
every authorize does the whole check and none is denied (a throughput test sends far more than any
real tier's RPM, and nothing in it releases the concurrency leases). Not part of the product."""

from __future__ import annotations

from django.conf import settings

BIG = 10**12


def never_reached_tiers() -> None:
    settings.CONSOLE_RATE_TIERS = [
        {"name": "Tier5", "min_topup": 0, "concurrency": BIG, "rpm": BIG, "tpm": BIG, "tpd": BIG},
    ]
