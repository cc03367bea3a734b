"""The TPM limiter: Redis (Lua) and in-process behave the same; Redis down fails open."""

from __future__ import annotations

import secrets
import threading

import pytest
from django.conf import settings

from billing import limiter as limiter_module
from billing.limiter import MemoryTokenLimiter, RedisTokenLimiter, TpmCorrection, get_limiter, limiter_failures


@pytest.fixture(params=["redis", "memory"])
def limiter(request):
    if request.param == "redis":
        return RedisTokenLimiter(settings.REDIS_URL)
    return MemoryTokenLimiter()


@pytest.fixture
def clock(monkeypatch):
    """Pin the limiter's clock at 10 s into a minute; tests move it."""
    state = {"now": 1_900_000_000 // 60 * 60 + 10.0}
    monkeypatch.setattr(limiter_module.time, "time", lambda: state["now"])
    return state


def ids() -> tuple[str, str]:
    return f"org-{secrets.token_hex(6)}", f"proj_{secrets.token_hex(6)}"


def consume(limiter, org, project, tokens, *, org_tpm=10_000, project_tpm=10_000):
    return limiter.consume(organization_id=org, organization_tpm=org_tpm, project_id=project,
                           project_tpm=project_tpm, tokens=tokens)


def test_organization_and_project_windows_are_checked_and_consumed_together(limiter, clock):
    org, project_a = ids()
    _, project_b = ids()
    assert consume(limiter, org, project_a, 3000, project_tpm=4000).remaining == 1000
    denied = consume(limiter, org, project_a, 1001, project_tpm=4000)
    assert (denied.allowed, denied.scope, denied.retry_after) == (False, "project", 50)
    assert consume(limiter, org, project_b, 7000).allowed  # the org window now holds 10 000
    denied = consume(limiter, org, project_b, 1)
    assert (denied.allowed, denied.scope) == (False, "organization")
    # A denied call consumed nothing in either window.
    assert consume(limiter, org, project_a, 0, project_tpm=4000).remaining == 0


def test_the_window_slides_over_the_previous_minute(limiter, clock):
    org, project = ids()
    assert consume(limiter, org, project, 10_000).allowed
    clock["now"] += 60  # 10 s into the next minute: 50/60 of the previous minute still counts
    assert not consume(limiter, org, project, 1700).allowed
    assert consume(limiter, org, project, 1600).allowed  # 10 000 x 50/60 = 8333 used
    clock["now"] += 60  # two minutes on: the first minute has left the window
    assert consume(limiter, org, project, 8000).allowed


def test_corrections_give_back_or_add_tokens_of_a_minute_still_in_the_window(limiter, clock):
    org, project = ids()
    minute = int(clock["now"] // 60)
    consume(limiter, org, project, 10_000)
    limiter.correct([TpmCorrection(org, project, minute, -6000)])
    assert consume(limiter, org, project, 6000).allowed
    limiter.correct([TpmCorrection(org, project, minute, -50_000)])  # never below zero
    assert consume(limiter, org, project, 10_000).allowed
    limiter.correct([TpmCorrection(org, project, minute, 5)])
    assert not consume(limiter, org, project, 1).allowed
    other_org, other_project = ids()
    limiter.correct([TpmCorrection(other_org, other_project, minute - 5, 9999)])  # nothing to correct
    assert consume(limiter, other_org, other_project, 10_000).allowed


def test_concurrent_calls_never_overshoot_the_window(limiter):
    org, project = ids()
    allowed: list[bool] = []
    barrier = threading.Barrier(20)

    def call() -> None:
        barrier.wait()
        for _ in range(10):
            allowed.append(consume(limiter, org, project, 100).allowed)

    threads = [threading.Thread(target=call) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == 100  # 10 000 / 100, whatever the interleaving


def test_unreachable_redis_fails_open_counts_and_backs_off(monkeypatch):
    limiter = RedisTokenLimiter("redis://127.0.0.1:1/0")
    before, _ = limiter_failures()
    decision = consume(limiter, *ids(), 10**9)
    assert decision.allowed and decision.degraded
    assert limiter_failures()[0] == before + 1
    calls: list[object] = []
    monkeypatch.setattr(limiter, "_consume", lambda **kw: calls.append(kw))
    assert consume(limiter, *ids(), 1).degraded  # within the back-off: Redis is not even tried
    assert calls == []
    assert limiter_failures()[0] == before + 2
    assert not limiter.ping()


def test_without_redis_url_the_in_process_limiter_is_used(settings):
    settings.REDIS_URL = ""
    assert isinstance(get_limiter(), MemoryTokenLimiter)
    assert get_limiter() is get_limiter()
