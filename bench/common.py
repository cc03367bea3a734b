"""Shared plumbing for the benchmarks: settings, seed data, a gunicorn server, a load generator.

The benchmarks are scripts, not tests: each measures a baseline and the real thing in the same
run, on the same machine and server settings, and prints the ratio. They run on PostgreSQL and
Redis (DATABASE_URL, REDIS_URL; defaults as for the tests) with the production settings, start
gunicorn themselves on a free loopback port and stop it when done.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GATEWAY_TOKEN = "bench-gateway-token"  # noqa: S105 -- a throwaway token for a loopback server
WORKERS = int(os.environ.get("BENCH_WORKERS", str(2 * (os.cpu_count() or 1) + 1)))  # gunicorn's advice

ENV = {
    "DJANGO_SETTINGS_MODULE": "console.settings.production",
    "SECRET_KEY": "bench-only-secret-key-not-for-production-use-0123456789",
    "DATABASE_URL": os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"),
    "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "CONSOLE_GATEWAY_TOKENS": GATEWAY_TOKEN,
    "CONN_MAX_AGE": "60",
    "LOG_LEVEL": "WARNING",
    "CONSOLE_VAR_DIR": os.environ.get("CONSOLE_VAR_DIR", str(Path(tempfile.gettempdir()) / "console-bench-var")),
}
os.environ.update(ENV)


def django_setup() -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


@dataclass
class Seed:
    raw_key: str
    key_id: str
    project_pk: int
    organization_pk: int
    model: str


def seed(*, daily_budget: str | None = None, topup: str = "1000000") -> Seed:
    """A funded organization at the top rate tier, a project and a key (unique per call)."""
    from decimal import Decimal

    from billing.models import LedgerKind, Price
    from billing.services.ledger import ledger_post
    from billing.services.prices import price_set
    from console.models import User
    from orgs.services import organization_create
    from projects.keys import generate_raw_key, key_digest, key_hint
    from projects.models import APIKey, Project

    tag = uuid.uuid4().hex[:10]
    user = User.objects.create(email=f"bench-{tag}@example.com")
    organization = organization_create(actor=user, name=f"Bench {tag}", registered_email=user.email)
    type(organization).objects.filter(pk=organization.pk).update(rate_tier_override="Tier5")
    ledger_post(organization=organization, kind=LedgerKind.TOPUP, amount=Decimal(topup),
                reference=f"bench-{tag}", actor=None)
    project = Project.objects.create(organization=organization, name="Bench",
                                     daily_budget=Decimal(daily_budget) if daily_budget else None)
    raw = generate_raw_key()
    key = APIKey.objects.create(organization=organization, project=project, created_by=user, name="bench",
                                digest=key_digest(raw), hint=key_hint(raw))
    model = "bench-model"
    if not Price.objects.filter(model=model).exists():
        from datetime import UTC, datetime

        price_set(model=model, input_per_mtok=Decimal("1.000000"), output_per_mtok=Decimal("2.000000"),
                  effective_from=datetime(2020, 1, 1, tzinfo=UTC), actor=None)
    return Seed(raw, key.public_id, project.pk, organization.pk, model)


def cleanup(seed: Seed) -> None:
    from django.db import connection

    from billing.models import LedgerEntry, UsageBatch, UsageEvent, UsageRollup
    from orgs.models import Organization

    org = Organization.objects.get(pk=seed.organization_pk)
    user_ids = list(org.memberships.values_list("user_id", flat=True))
    batch_ids = set(UsageEvent.objects.filter(organization=org).values_list("batch_id", flat=True))
    UsageRollup.objects.filter(organization=org).delete()
    LedgerEntry.objects.filter(organization=org).delete()  # the ledger PROTECTs its organization
    org.delete()
    UsageBatch.objects.filter(pk__in=batch_ids, usage_events__isnull=True).delete()
    from console.models import User

    User.objects.filter(pk__in=user_ids).delete()
    connection.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def gunicorn(*, workers: int = WORKERS, app: str = "console.wsgi", env: dict[str, str] | None = None) -> Iterator[int]:
    """gunicorn with sync workers on a free loopback port, stopped on exit. `app` may also be a
    module of bench/ (on the path for the server too); `env` overrides ENV (e.g. DATABASE_URL)."""
    port = free_port()
    log = open(Path(ENV["CONSOLE_VAR_DIR"]) / "gunicorn.log", "ab")  # noqa: SIM115 -- closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", app, "-b", f"127.0.0.1:{port}", "-w", str(workers),
         "--log-level", "warning", "--backlog", "2048"],
        cwd=ROOT, env={**os.environ, **ENV, **(env or {}), "PYTHONPATH": str(ROOT / "bench")}, stdout=log, stderr=log,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if request(port, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start; see {log.name}")
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def request(port: int, method: str, path: str, *, headers: dict[str, str] | None = None,
            body: bytes | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def throughput(port: int, path: str, *, headers: dict[str, str] | None = None, seconds: int = 4,
               connections: int = 10) -> tuple[float, int]:
    """Requests per second of GETs from wrk (C, two threads): a load generator in Python took as much
    of the two cores as the server did, which hid part of the server's cost. Returns the rate and
    the number of answers other than 2xx/3xx. gunicorn's sync workers close each connection, so
    every request opens a new one, as the gateway's would without keep-alive."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: `make bench` installs it (Debian package wrk).")
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True,
                         check=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rate is None:
        raise RuntimeError(f"wrk printed no rate:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return float(rate.group(1)), int(errors.group(1)) if errors else 0


def paired_ratio(target: Callable[[], float], baseline: Callable[[], float], *, rounds: int = 7,
                 label: str = "target", base_label: str = "baseline") -> float:
    """Measure baseline and target in turns and return the median of each round's ratio: on a shared
    machine the load drifts, and a ratio of two back-to-back measurements cancels most of it."""
    ratios = []
    for n in range(1, rounds + 1):
        base = baseline()
        value = target()
        ratios.append(value / base)
        print(f"  round {n}: {base_label} {base:,.0f}, {label} {value:,.0f} -> {value / base:.2f}x")
    return statistics.median(ratios)


def verdict(name: str, value: float, target: float, *, unit: str = "x", higher_is_better: bool = True) -> str:
    ok = value >= target if higher_is_better else value <= target
    sign = ">=" if higher_is_better else "<="
    return f"{name}: {value:.2f}{unit} (target {sign} {target}{unit}) {'OK' if ok else 'MISSED'}"


def dumps(value: object) -> bytes:
    return json.dumps(value).encode()
