"""Real threads on PostgreSQL and Redis: with N concurrent authorizations against a limit L, exactly
min(N, L) pass, for each limit at each level (200 calls from 40 threads released together: each
thread holds its own database connection, and the machine's PostgreSQL allows 100)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client, override_settings

from billing.tests.conftest import Gateway, within_one_minute
from billing.tests.factories import ProjectFactory, fund, make_api_key
from projects.models import Project

pytestmark = pytest.mark.django_db(transaction=True)

CALLS, THREADS, LIMIT, TOKENS = 200, 40, 50, 1000
WIDE = {"name": "Tier0", "min_topup": Decimal("0"), "concurrency": 10_000, "rpm": 10_000, "tpm": 10**9, "tpd": None}

CASES = {  # tier limits, project limits, the denial's (limit, scope)
    "org-concurrency": ({"concurrency": LIMIT}, {}, ("concurrency", "organization")),
    "org-rpm": ({"rpm": LIMIT}, {}, ("requests_per_minute", "organization")),
    "org-tpm": ({"tpm": LIMIT * TOKENS}, {}, ("tokens_per_minute", "organization")),
    "org-tpd": ({"tpd": LIMIT * TOKENS}, {}, ("tokens_per_day", "organization")),
    "project-rpm": ({}, {"rpm_limit": LIMIT}, ("requests_per_minute", "project")),
    "project-tpm": ({}, {"tpm_limit": LIMIT * TOKENS}, ("tokens_per_minute", "project")),
}


@pytest.mark.parametrize(("tier", "project", "denied_by"), CASES.values(), ids=CASES.keys())
def test_exactly_the_limit_passes_under_concurrency(tier, project, denied_by, capsys):
    raw, key = make_api_key()
    fund(key.organization, "5")
    Project.objects.filter(pk=key.project_id).update(**project)
    # Two projects share the organization's windows: half the calls come through each.
    other_raw, _ = make_api_key(project=ProjectFactory(organization=key.organization))
    if project:
        Project.objects.filter(organization=key.organization).update(**project)
    barrier = threading.Barrier(THREADS)
    answers: list[tuple[int, tuple[str, str] | None]] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        gateway = Gateway(Client())
        barrier.wait()
        try:
            for _ in range(CALLS // THREADS):
                response = gateway.authorize(raw if project or n % 2 else other_raw, estimate=TOKENS)
                error = response.json().get("error") if response.status_code != 200 else None
                with lock:
                    answers.append((response.status_code, (error["limit"], error["scope"]) if error else None))
        finally:
            connection.close()

    within_one_minute(20)
    with override_settings(CONSOLE_RATE_TIERS=[{**WIDE, **tier}]), ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(worker, range(THREADS)))
    passed = sum(1 for status, _ in answers if status == 200)
    with capsys.disabled():
        print(f"\n  {denied_by}: {len(answers)} calls sent, {passed} passed, limit {LIMIT}")
    assert len(answers) == CALLS
    assert passed == min(CALLS, LIMIT)
    assert {which for status, which in answers if status != 200} == {denied_by}
