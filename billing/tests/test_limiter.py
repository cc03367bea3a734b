"""The rate limiter: Redis (Lua) and in-process behave the same for every limit; Redis down fails open."""

from __future__ import annotations

import secrets
import threading

import pytest
from django.conf import settings

from billing import limiter as limiter_module
from billing.limiter import (
    Correction,
    Limits,
    MemoryRateLimiter,
    authorization_id_make,
    authorization_parse,
    get_limiter,
    limiter_failures,
)
from billing.limiter_redis import RedisRateLimiter

WIDE = Limits(concurrency=1000, org_rpm=1000, org_tpm=100_000, org_tpd=None, project_rpm=None, project_tpm=100_000)


@pytest.fixture(params=["redis", "memory"])
def limiter(request):
    if request.param == "redis":
        return RedisRateLimiter(settings.REDIS_URL)
    return MemoryRateLimiter()


@pytest.fixture
def clock(monkeypatch):
    """Pin the limiter's clock at 10 s into a minute (and 10 s into a UTC day); tests move it."""
    state = {"now": 1_900_000_000 // 86_400 * 86_400 + 10.0}
    monkeypatch.setattr(limiter_module.time, "time", lambda: state["now"])
    return state


def ids() -> tuple[str, str]:
    return f"org-{secrets.token_hex(6)}", f"proj_{secrets.token_hex(6)}"


def consume(limiter, org, project, tokens=0, **limits):
    return limiter.consume(organization_id=org, project_id=project, limits=Limits(**{**WIDE.__dict__, **limits}),
                           tokens=tokens)


LIMITS = [  # (limit field, value, tokens per call, the denial's limit and scope)
    ("concurrency", 3, 0, "concurrency", "organization"),
    ("org_rpm", 4, 0, "requests_per_minute", "organization"),
    ("org_tpm", 5000, 1000, "tokens_per_minute", "organization"),
    ("org_tpd", 6000, 1000, "tokens_per_day", "organization"),
    ("project_rpm", 2, 0, "requests_per_minute", "project"),
    ("project_tpm", 3000, 1000, "tokens_per_minute", "project"),
]


@pytest.mark.parametrize(("field", "value", "tokens", "name", "scope"), LIMITS)
def test_each_limit_denies_at_exactly_its_value_and_a_denial_consumes_nothing(
    limiter, clock, field, value, tokens, name, scope
):
    org, project = ids()
    calls = value // tokens if tokens else value
    decisions = [consume(limiter, org, project, tokens, **{field: value}) for _ in range(calls + 3)]
    assert [d.allowed for d in decisions] == [True] * calls + [False] * 3
    denied = decisions[-1]
    assert (denied.limit, denied.scope, denied.limit_value) == (name, scope, value)
    assert denied.retry_after >= 1
    assert not denied.authorization_id
    usage = limiter.usage(organization_id=org, project_id=project)
    # Only the allowed calls were counted, in every window, and reading consumed nothing.
    assert usage == limiter.usage(organization_id=org, project_id=project)
    assert (usage.concurrency, usage.org_requests, usage.project_requests) == (calls, calls, calls)
    assert (usage.org_tokens, usage.project_tokens, usage.org_tokens_today) == (calls * tokens,) * 3


def test_project_windows_are_its_own_while_the_organization_is_shared(limiter, clock):
    org, project_a = ids()
    _, project_b = ids()
    for _ in range(2):
        assert consume(limiter, org, project_a, project_rpm=2, org_rpm=3).allowed
    assert consume(limiter, org, project_a, project_rpm=2, org_rpm=3).scope == "project"
    assert consume(limiter, org, project_b, project_rpm=2, org_rpm=3).allowed  # project B has room...
    denied = consume(limiter, org, project_b, project_rpm=2, org_rpm=3)
    assert (denied.limit, denied.scope) == ("requests_per_minute", "organization")  # ...the org has not


def test_headers_numbers_report_the_tighter_of_organization_and_project(limiter, clock):
    org, project = ids()
    decision = consume(limiter, org, project, 1000, org_rpm=10, project_rpm=4, org_tpm=50_000, project_tpm=8000)
    assert (decision.requests_limit, decision.requests_remaining) == (4, 3)
    assert (decision.tokens_limit, decision.tokens_remaining) == (8000, 7000)
    assert decision.reset_seconds == 50


def test_the_minute_windows_slide_and_the_day_resets_at_midnight_utc(limiter, clock):
    org, project = ids()
    assert consume(limiter, org, project, 10_000, org_tpm=10_000, org_tpd=15_000).allowed
    clock["now"] += 60  # 10 s into the next minute: 50/60 of the previous minute still counts
    assert consume(limiter, org, project, 1700, org_tpm=10_000).limit == "tokens_per_minute"
    assert consume(limiter, org, project, 1600, org_tpm=10_000).allowed  # 10 000 x 50/60 = 8333 used
    clock["now"] += 120  # the first minutes have left the window, the day has not
    denied = consume(limiter, org, project, 5000, org_tpd=15_000)
    assert (denied.limit, denied.retry_after) == ("tokens_per_day", 86_400 - 190)
    clock["now"] += 86_400  # the next UTC day
    assert consume(limiter, org, project, 5000, org_tpd=15_000).allowed


def test_leases_are_released_and_expire_by_themselves(limiter, clock, settings):
    settings.CONSOLE_CONCURRENCY_LEASE_SECONDS = 30
    org, project = ids()
    first = consume(limiter, org, project, concurrency=2)
    second = consume(limiter, org, project, concurrency=2)
    assert first.allowed and second.allowed
    assert consume(limiter, org, project, concurrency=2).limit == "concurrency"
    released = authorization_parse(first.authorization_id)
    limiter.release(organization_id=org, leases=[released.nonce])
    limiter.release(organization_id=org, leases=[released.nonce])  # twice is harmless
    assert limiter.usage(organization_id=org).concurrency == 1
    third = consume(limiter, org, project, concurrency=2)
    assert third.allowed
    assert not consume(limiter, org, project, concurrency=2).allowed
    clock["now"] += 31  # nobody released the other two: their leases expired
    assert limiter.usage(organization_id=org).concurrency == 0
    assert consume(limiter, org, project, concurrency=2).allowed


def test_corrections_move_the_authorized_minute_and_day_and_free_the_lease(limiter, clock):
    org, project = ids()
    decision = consume(limiter, org, project, 10_000, concurrency=1, org_tpm=10_000, org_tpd=20_000)
    auth = authorization_parse(decision.authorization_id)
    assert (auth.organization_id, auth.project_id, auth.tokens) == (org, project, 10_000)
    clock["now"] += 30  # usage arrives later in the same minute: the call used 4000 tokens
    limiter.correct([Correction(org, project, auth.minute, 4000 - auth.tokens, lease=auth.nonce)])
    usage = limiter.usage(organization_id=org, project_id=project)
    assert (usage.concurrency, usage.org_tokens, usage.project_tokens, usage.org_tokens_today) == (0, 4000, 4000, 4000)
    limiter.correct([Correction(org, project, auth.minute, -50_000)])  # never below zero
    assert limiter.usage(organization_id=org).org_tokens == 0
    limiter.correct([Correction(org, project, auth.minute, 10_000)])  # an under-estimate is added
    assert consume(limiter, org, project, 1, org_tpm=10_000).limit == "tokens_per_minute"
    other_org, other_project = ids()
    limiter.correct([Correction(other_org, other_project, auth.minute - 5, 9999)])  # nothing to correct
    assert limiter.usage(organization_id=other_org) == limiter.usage(organization_id=other_org, project_id="x")
    assert limiter.usage(organization_id=other_org).org_tokens_today == 0


def test_the_events_of_one_authorization_give_its_estimate_back_once(limiter, clock):
    org, project = ids()
    in_flight = consume(limiter, org, project, 1000, concurrency=2, org_tpm=10_000, org_tpd=20_000)
    auth = authorization_parse(consume(limiter, org, project, 1000, concurrency=2).authorization_id)
    chunk = Correction(org, project, auth.minute, 100, lease=auth.nonce, estimate=auth.tokens)
    clock["now"] += 5
    limiter.correct([chunk, chunk])  # two streamed chunks of the call in one batch
    usage = limiter.usage(organization_id=org, project_id=project)
    # The call in flight's 1000 + the chunks' 200: its estimate was given back once, not twice.
    assert (usage.org_tokens, usage.project_tokens, usage.org_tokens_today) == (1200, 1200, 1200)
    clock["now"] += 5
    limiter.correct([chunk])  # a third chunk, in a later batch
    usage = limiter.usage(organization_id=org, project_id=project)
    assert (usage.org_tokens, usage.project_tokens, usage.org_tokens_today) == (1300, 1300, 1300)
    # The first chunk freed the call's lease; the others freed nobody else's.
    assert usage.concurrency == 1
    assert consume(limiter, org, project, 0, concurrency=2).allowed
    assert consume(limiter, org, project, 0, concurrency=2).limit == "concurrency"
    assert in_flight.allowed


def test_a_report_later_than_the_horizon_adds_its_tokens_and_gives_nothing_back(limiter, clock, settings):
    settings.CONSOLE_CONCURRENCY_LEASE_SECONDS = 30  # the horizon: 30 s + two windows after the minute
    org, project = ids()
    auth = authorization_parse(consume(limiter, org, project, 1000, org_tpd=20_000).authorization_id)
    clock["now"] += 30 + 120 - 10  # 10 s into the call's minute + 140 s: still within it
    limiter.correct([Correction(org, project, auth.minute, 100, lease=auth.nonce, estimate=auth.tokens)])
    assert limiter.usage(organization_id=org).org_tokens_today == 100
    late = authorization_parse(consume(limiter, org, project, 1000, org_tpd=20_000).authorization_id)
    clock["now"] += 30 + 120 + 1 + 60  # past the second call's horizon: its marker may be gone
    limiter.correct([Correction(org, project, late.minute, 100, lease=late.nonce, estimate=late.tokens)])
    assert limiter.usage(organization_id=org).org_tokens_today == 100 + 1000 + 100


def test_authorization_ids_are_signed():
    good = authorization_id_make(organization_id="org-a", project_id="proj_b", minute=5, tokens=100, nonce="n1")
    assert authorization_parse(good).tokens == 100
    forged = good.replace(".100.", ".1.")
    assert authorization_parse(forged) is None
    assert authorization_parse("az.x.y") is None
    assert authorization_parse("") is None


def test_concurrent_calls_never_overshoot_any_window(limiter):
    org, project = ids()
    allowed: list[bool] = []
    barrier = threading.Barrier(20)

    def call() -> None:
        barrier.wait()
        for _ in range(10):
            allowed.append(consume(limiter, org, project, 100, org_tpm=10_000, org_rpm=150).allowed)

    threads = [threading.Thread(target=call) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == 100  # 10 000 / 100, whatever the interleaving


def test_unreachable_redis_fails_open_for_every_limit_counts_and_backs_off(monkeypatch):
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0")
    before, _ = limiter_failures()
    decision = consume(limiter, *ids(), 10**9, concurrency=0, org_rpm=0, org_tpd=0, project_rpm=0)
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
    assert isinstance(get_limiter(), MemoryRateLimiter)
    assert get_limiter() is get_limiter()


@pytest.mark.parametrize(("field", "name"), [("org_rpm", "requests_per_minute"), ("project_tpm", "tokens_per_minute")])
def test_retry_after_says_when_the_sliding_window_has_room_again(limiter, clock, field, name):
    org, project = ids()
    tokens = 1000 if name == "tokens_per_minute" else 0
    value = 3000 if tokens else 3
    for _ in range(3):
        assert consume(limiter, org, project, tokens, **{field: value}).allowed  # 10 s into the minute
    denied = consume(limiter, org, project, tokens, **{field: value})
    # The minute's 3 calls slide out during the next one: RPM counts floor(3 x weight), which is 2
    # right after the minute; 3000 tokens x weight leave room for 1000 once 20 s into it.
    assert denied.retry_after == (50 + 20 if tokens else 51)
    clock["now"] += denied.retry_after - 1
    assert consume(limiter, org, project, tokens, **{field: value}).limit == name
    clock["now"] += 1
    assert consume(limiter, org, project, tokens, **{field: value}).allowed
    assert not consume(limiter, org, project, tokens, **{field: value}).allowed  # 2 + 1 again
    later = consume(limiter, org, project, tokens, **{field: value})
    # Now the previous minute's share must shrink: 2 of its 3 still count (40/60), 1 in this minute.
    assert later.retry_after >= 1
    clock["now"] += later.retry_after
    assert consume(limiter, org, project, tokens, **{field: value}).allowed
