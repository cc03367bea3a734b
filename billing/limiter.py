"""The organization's shared rate limits and the project's own, checked and consumed together.

Every authorize is one atomic decision over all the windows that apply:

- the organization's **concurrency**: leases (one per allowed call) that expire after
  `CONSOLE_CONCURRENCY_LEASE_SECONDS`, freed early by the call's usage report or by
  `POST /api/v1/gateway/release`;
- the organization's **RPM** and **TPM**, and the project's TPM and (when it sets one) RPM: a
  sliding window over the last 60 seconds, approximated with two fixed one-minute buckets (the
  current minute plus the previous one weighted by the part still inside the window);
- the organization's **TPD**: the tokens of the current UTC day.

A denial consumes nothing. Authorize counts the call's estimate; when its usage arrives, the
token buckets of the minute and day the call was authorized in are corrected by (actual -
estimate), so the windows converge on real consumption. The authorization id that authorize
returns carries that minute and the estimate, signed. A call may be reported in several events
(streamed chunks): each adds its actual tokens, and the estimate is given back once per
authorization, by the first of them (a short-lived marker per authorization, set in the same
atomic step; see `estimate_returnable`).

With Redis (`REDIS_URL`) the decision is one Lua script (billing/limiter_redis.py): one round
trip, every key under the organization's hash tag so it runs unchanged on a Redis Cluster.
Without Redis — the embedded `make run` default — the in-process limiter below does the same
under a lock (exact for one process; dev only).

If Redis cannot be reached the limiter fails **open** for all four limits: the call is allowed, a
warning is logged, and a counter that `/readyz` reports goes up.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import structlog
from django.conf import settings

from .codes import RateLimit, RateScope

logger = structlog.get_logger(__name__)

WINDOW_SECONDS = 60
DAY_SECONDS = 86_400
BUCKET_TTL_SECONDS = 3 * WINDOW_SECONDS  # the previous bucket must outlive the current minute
DAY_TTL_SECONDS = 2 * DAY_SECONDS

CONCURRENCY = RateLimit.CONCURRENCY.value
REQUESTS_PER_MINUTE = RateLimit.REQUESTS_PER_MINUTE.value
TOKENS_PER_MINUTE = RateLimit.TOKENS_PER_MINUTE.value
TOKENS_PER_DAY = RateLimit.TOKENS_PER_DAY.value
ORGANIZATION = RateScope.ORGANIZATION.value
PROJECT = RateScope.PROJECT.value

# The order in which the windows are checked; the first full one is the one a denial names.
CHECKS: tuple[tuple[str, str], ...] = (
    (CONCURRENCY, ORGANIZATION),
    (REQUESTS_PER_MINUTE, ORGANIZATION),
    (TOKENS_PER_MINUTE, ORGANIZATION),
    (TOKENS_PER_DAY, ORGANIZATION),
    (REQUESTS_PER_MINUTE, PROJECT),
    (TOKENS_PER_MINUTE, PROJECT),
)


@dataclass(frozen=True)
class Limits:
    """What one call is checked against. Project values are already capped by the org's."""

    concurrency: int
    org_rpm: int
    org_tpm: int
    org_tpd: int | None  # None: unlimited
    project_rpm: int | None  # None: the project sets no RPM of its own
    project_tpm: int

    def value(self, limit: str, scope: str) -> int:
        """The number behind one of CHECKS (0 for a window that does not apply)."""
        values = dict(zip(CHECKS, (self.concurrency, self.org_rpm, self.org_tpm, self.org_tpd,
                                   self.project_rpm, self.project_tpm), strict=True))
        return values[(limit, scope)] or 0

    @property
    def requests_limit(self) -> int:
        return self.org_rpm if self.project_rpm is None else min(self.project_rpm, self.org_rpm)

    @property
    def tokens_limit(self) -> int:
        return min(self.project_tpm, self.org_tpm)


@dataclass(frozen=True)
class Usage:
    """What the windows hold now (before the call being decided, when deciding)."""

    concurrency: int = 0
    org_requests: int = 0
    org_tokens: int = 0
    org_tokens_today: int = 0
    project_requests: int = 0
    project_tokens: int = 0
    # The current minute's buckets of the sliding windows (org requests, org tokens, project
    # requests, project tokens): what is left once the previous minute has slid out. Retry-After.
    current: tuple[int, int, int, int] = (0, 0, 0, 0)
    previous: tuple[int, int, int, int] = (0, 0, 0, 0)  # the previous minute's buckets, in full


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: str = ""  # denied: one of the four limit names
    scope: str = ""  # denied: "organization" | "project"
    limit_value: int = 0  # denied: the number behind that limit
    retry_after: int = 0  # seconds; 0 when allowed
    requests_limit: int = 0
    requests_remaining: int = 0
    tokens_limit: int = 0
    tokens_remaining: int = 0
    reset_seconds: float = 0.0  # until the current minute bucket stops counting in full
    authorization_id: str = ""
    degraded: bool = False  # True when the limiter failed open


@dataclass(frozen=True)
class Correction:
    """Tokens to add (or, negative, give back) to the buckets of the minute a call was authorized in;
    `lease` also frees that call's concurrency lease. `estimate` is taken off as well, but only by
    the first correction that names the authorization (`lease`) within `estimate_returnable`'s
    horizon: the events of one call give its estimate back once."""

    organization_id: str
    project_id: str
    minute: int  # unix time // 60
    delta: int
    lease: str = ""  # the authorization's nonce, "" when the event did not name its authorization
    estimate: int = 0  # what authorize counted for that authorization (needs `lease`)


class RateLimiter(Protocol):
    def consume(self, *, organization_id: str, project_id: str, limits: Limits, tokens: int) -> Decision: ...

    def correct(self, corrections: Iterable[Correction]) -> None: ...

    def release(self, *, organization_id: str, leases: Iterable[str]) -> None: ...

    def usage(self, *, organization_id: str, project_id: str | None = None) -> Usage: ...

    def ping(self) -> bool: ...


# --- the rules both implementations share --------------------------------------------------------


def window(now: float) -> tuple[int, float]:
    """The current minute and the weight of the previous minute still inside the window."""
    minute = int(now // WINDOW_SECONDS)
    elapsed = now - minute * WINDOW_SECONDS
    return minute, (WINDOW_SECONDS - elapsed) / WINDOW_SECONDS


def lease_seconds() -> int:
    return int(settings.CONSOLE_CONCURRENCY_LEASE_SECONDS)


def estimate_return_seconds() -> int:
    """How long after its minute an authorization's estimate can be given back: the call's longest
    life (its lease) plus two windows for the usage report to travel."""
    return lease_seconds() + 2 * WINDOW_SECONDS


def corrected_marker_ms() -> int:
    """The life of the "estimate given back" marker: a window beyond the horizon, so no event can
    still give the estimate back once its marker is gone (nor on a host whose clock is a little off)."""
    return (estimate_return_seconds() + WINDOW_SECONDS) * 1000


def estimate_returnable(item: Correction, now: float) -> int:
    """The estimate `item` may give back if its authorization's marker is not set yet: its estimate
    within the horizon, else 0. A report that late adds its actual tokens and gives nothing back (the
    minute's buckets are gone; the day's keeps the estimate: counting a little high, never low)."""
    if not item.estimate or not item.lease or now - item.minute * WINDOW_SECONDS > estimate_return_seconds():
        return 0
    return item.estimate


def decide(*, usage: Usage, limits: Limits, tokens: int, now: float, authorization_id: str = "") -> Decision:
    """The decision over `usage` as it was before the call (the Lua script makes the same one)."""
    full = first_full(usage=usage, limits=limits, tokens=tokens)
    allowed = full is None
    taken = 1 if allowed else 0
    requests_remaining = min(limits.org_rpm - usage.org_requests,
                             (limits.project_rpm - usage.project_requests) if limits.project_rpm is not None
                             else limits.org_rpm) - taken
    tokens_remaining = min(limits.org_tpm - usage.org_tokens, limits.project_tpm - usage.project_tokens)
    tokens_remaining -= tokens if allowed else 0
    into_minute = now % WINDOW_SECONDS
    common = {
        "requests_limit": limits.requests_limit, "requests_remaining": max(0, requests_remaining),
        "tokens_limit": limits.tokens_limit, "tokens_remaining": max(0, tokens_remaining),
        "reset_seconds": WINDOW_SECONDS - into_minute,
    }
    if full is None:
        return Decision(allowed=True, authorization_id=authorization_id, **common)  # type: ignore[arg-type]
    limit, scope = full
    if limit == CONCURRENCY:
        retry_after = 1  # a lease frees as soon as a call in flight reports its usage
    elif limit == TOKENS_PER_DAY:
        retry_after = max(1, math.ceil(DAY_SECONDS - now % DAY_SECONDS))
    else:
        index = _SLIDING.index((limit, scope))
        add = 1 if limit == REQUESTS_PER_MINUTE else tokens
        retry_after = sliding_wait(current=usage.current[index], previous=usage.previous[index],
                                   limit=limits.value(limit, scope), add=add, now=now)
    return Decision(allowed=False, limit=limit, scope=scope, limit_value=limits.value(limit, scope),
                    retry_after=retry_after, **common)  # type: ignore[arg-type]


_SLIDING = (
    (REQUESTS_PER_MINUTE, ORGANIZATION), (TOKENS_PER_MINUTE, ORGANIZATION),
    (REQUESTS_PER_MINUTE, PROJECT), (TOKENS_PER_MINUTE, PROJECT),
)


def sliding_wait(*, current: int, previous: int, limit: int, add: int, now: float) -> int:
    """Seconds until `add` more fits a sliding minute window of buckets `current` and `previous`, if
    nothing else arrives: the previous minute's share shrinks as this minute goes by, then this
    minute's does during the next one. The window counts floor(bucket x weight)."""
    elapsed = now % WINDOW_SECONDS
    left = WINDOW_SECONDS - elapsed
    if add > limit:  # never fits in one window (an estimate above the TPM): a full window at least
        return math.ceil(left + WINDOW_SECONDS)
    if current + add <= limit and previous > 0:
        # current + floor(previous x (60 - t) / 60) + add <= limit  <=>  previous x (60 - t) / 60 < room + 1
        fits_after = WINDOW_SECONDS - WINDOW_SECONDS * (limit - add - current + 1) / previous
        return max(1, math.floor(max(0.0, fits_after - elapsed)) + 1)
    if current <= 0:
        return max(1, math.ceil(left))
    fits_after_next = WINDOW_SECONDS - WINDOW_SECONDS * (limit - add + 1) / current
    return max(1, math.floor(left + max(0.0, fits_after_next)) + 1)


def first_full(*, usage: Usage, limits: Limits, tokens: int) -> tuple[str, str] | None:
    """The first window (in CHECKS order) this call would overflow, or None."""
    over = (
        usage.concurrency + 1 > limits.concurrency,
        usage.org_requests + 1 > limits.org_rpm,
        usage.org_tokens + tokens > limits.org_tpm,
        limits.org_tpd is not None and usage.org_tokens_today + tokens > limits.org_tpd,
        limits.project_rpm is not None and usage.project_requests + 1 > limits.project_rpm,
        usage.project_tokens + tokens > limits.project_tpm,
    )
    for check, is_over in zip(CHECKS, over, strict=True):
        if is_over:
            return check
    return None


def fail_open(limits: Limits) -> Decision:
    return Decision(allowed=True, requests_limit=limits.requests_limit, requests_remaining=limits.requests_limit,
                    tokens_limit=limits.tokens_limit, tokens_remaining=limits.tokens_limit, degraded=True)


# --- authorization ids ---------------------------------------------------------------------------
# "az.<org>.<project>.<minute>.<tokens>.<nonce>.<signature>": what a correction and a release need,
# signed with the SECRET_KEY so a forged id corrects or frees nothing. Public ids contain no dots.

_ID_PREFIX = "az"


def _signature(body: str) -> str:
    key = ("console.limiter:" + str(settings.SECRET_KEY)).encode()
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()[:20]


def authorization_id_make(*, organization_id: str, project_id: str, minute: int, tokens: int, nonce: str) -> str:
    body = f"{_ID_PREFIX}.{organization_id}.{project_id}.{minute}.{tokens}.{nonce}"
    return f"{body}.{_signature(body)}"


@dataclass(frozen=True)
class Authorization:
    organization_id: str
    project_id: str
    minute: int
    tokens: int
    nonce: str


def authorization_parse(value: str) -> Authorization | None:
    """The parts of an id authorize issued, or None for anything else (forged, truncated, foreign)."""
    if not isinstance(value, str) or len(value) > 200:
        return None
    body, _, signature = value.rpartition(".")
    if not hmac.compare_digest(signature.encode(), _signature(body).encode()):
        return None
    parts = body.split(".")
    if len(parts) != 6 or parts[0] != _ID_PREFIX or not parts[3].isascii() or not parts[4].isascii():
        return None
    try:
        return Authorization(parts[1], parts[2], int(parts[3]), int(parts[4]), parts[5])
    except ValueError:
        return None


def new_nonce() -> str:
    return secrets.token_hex(8)


def group_by_organization(corrections: Iterable[Correction]) -> dict[str, list[Correction]]:
    grouped: dict[str, list[Correction]] = defaultdict(list)
    for item in corrections:
        if item.delta or item.lease or item.estimate:
            grouped[item.organization_id].append(item)
    return grouped


# --- failure accounting (reported by /readyz) --------------------------------------------------

_failures_lock = threading.Lock()
_failures = {"count": 0, "last_at": 0.0}


def record_failure(exc: Exception) -> None:
    with _failures_lock:
        _failures["count"] += 1
        _failures["last_at"] = time.time()
    logger.warning("rate_limiter_unavailable_failing_open", error=exc.__class__.__name__)


def limiter_failures() -> tuple[int, float]:
    """How many times the limiter failed open in this process, and when it last did."""
    with _failures_lock:
        return int(_failures["count"]), float(_failures["last_at"])


# --- in-process ------------------------------------------------------------------------------------


def bucket_keys(organization_id: str, project_id: str, minute: int) -> dict[str, str]:
    """The keys of one minute's buckets and of its day; all under the organization's hash tag."""
    tag = "{" + organization_id + "}"
    return {
        "org_requests": f"rl:{tag}:rq:{minute}",
        "org_tokens": f"rl:{tag}:tk:{minute}",
        "org_day": f"rl:{tag}:td:{minute * WINDOW_SECONDS // DAY_SECONDS}",
        "project_requests": f"rl:{tag}:p:{project_id}:rq:{minute}",
        "project_tokens": f"rl:{tag}:p:{project_id}:tk:{minute}",
    }


def leases_key(organization_id: str) -> str:
    return "rl:{" + organization_id + "}:leases"


def corrected_key(organization_id: str, nonce: str) -> str:
    """Set once an authorization's estimate has been given back (under the organization's hash tag)."""
    return "rl:{" + organization_id + "}:az:" + nonce


class MemoryRateLimiter:
    """The same windows in dicts under a lock, for a single process without Redis."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[int, float]] = {}  # key -> (count, expires at)
        self._leases: dict[str, dict[str, float]] = defaultdict(dict)  # org -> nonce -> expires at
        self._corrected: dict[str, float] = {}  # corrected_key -> expires at

    def _get(self, key: str, now: float) -> int:
        value, expires = self._buckets.get(key, (0, 0.0))
        return max(0, value) if expires > now else 0

    def _add(self, key: str, amount: int, now: float, ttl: int) -> None:
        self._buckets[key] = (self._get(key, now) + amount, now + ttl)

    def _usage(self, organization_id: str, project_id: str, now: float) -> Usage:
        minute, weight = window(now)
        cur, prev = bucket_keys(organization_id, project_id, minute), bucket_keys(organization_id, project_id,
                                                                                 minute - 1)

        def slide(name: str) -> int:
            return self._get(cur[name], now) + math.floor(self._get(prev[name], now) * weight)

        sliding = ("org_requests", "org_tokens", "project_requests", "project_tokens")
        current = tuple(self._get(cur[name], now) for name in sliding)
        previous = tuple(self._get(prev[name], now) for name in sliding)

        leases = self._leases[organization_id]
        for nonce in [n for n, expires in leases.items() if expires <= now]:
            del leases[nonce]
        return Usage(
            concurrency=len(leases), org_requests=slide("org_requests"), org_tokens=slide("org_tokens"),
            org_tokens_today=self._get(cur["org_day"], now), project_requests=slide("project_requests"),
            project_tokens=slide("project_tokens"), current=current, previous=previous,  # type: ignore[arg-type]
        )

    def consume(self, *, organization_id: str, project_id: str, limits: Limits, tokens: int) -> Decision:
        now = time.time()
        minute, _ = window(now)
        nonce = new_nonce()
        with self._lock:
            if len(self._buckets) > 10_000:
                self._buckets = {k: v for k, v in self._buckets.items() if v[1] > now}
            usage = self._usage(organization_id, project_id, now)
            decision = decide(usage=usage, limits=limits, tokens=tokens, now=now)
            if decision.allowed:
                self._leases[organization_id][nonce] = now + lease_seconds()
                keys = bucket_keys(organization_id, project_id, minute)
                for name in ("org_requests", "project_requests"):
                    self._add(keys[name], 1, now, BUCKET_TTL_SECONDS)
                for name in ("org_tokens", "project_tokens"):
                    self._add(keys[name], tokens, now, BUCKET_TTL_SECONDS)
                self._add(keys["org_day"], tokens, now, DAY_TTL_SECONDS)
        if not decision.allowed:
            return decision
        return Decision(**{**decision.__dict__, "authorization_id": authorization_id_make(
            organization_id=organization_id, project_id=project_id, minute=minute, tokens=tokens, nonce=nonce)})

    def correct(self, corrections: Iterable[Correction]) -> None:
        now = time.time()
        with self._lock:
            if len(self._corrected) > 10_000:
                self._corrected = {k: v for k, v in self._corrected.items() if v > now}
            for organization_id, items in group_by_organization(corrections).items():
                for item in items:
                    self._leases[organization_id].pop(item.lease, None)
                    delta = item.delta
                    estimate = estimate_returnable(item, now)
                    marker = corrected_key(organization_id, item.lease)
                    if estimate and self._corrected.get(marker, 0.0) <= now:
                        self._corrected[marker] = now + corrected_marker_ms() / 1000
                        delta -= estimate
                    if not delta:
                        continue
                    keys = bucket_keys(item.organization_id, item.project_id, item.minute)
                    for name in ("org_tokens", "project_tokens", "org_day"):
                        value, expires = self._buckets.get(keys[name], (0, 0.0))
                        if expires > now:  # a bucket that has left its window no longer matters
                            self._buckets[keys[name]] = (max(0, value + delta), expires)

    def release(self, *, organization_id: str, leases: Iterable[str]) -> None:
        with self._lock:
            for nonce in leases:
                self._leases[organization_id].pop(nonce, None)

    def usage(self, *, organization_id: str, project_id: str | None = None) -> Usage:
        with self._lock:
            return self._usage(organization_id, project_id or "-", time.time())

    def ping(self) -> bool:
        return True


_limiters: dict[tuple[str, bool], RateLimiter] = {}
_limiters_lock = threading.Lock()


def get_limiter() -> RateLimiter:
    """The process's limiter for the configured REDIS_URL (in-process when there is none)."""
    url: str = getattr(settings, "REDIS_URL", "") or ""
    cluster = bool(getattr(settings, "CONSOLE_REDIS_CLUSTER", False))
    limiter = _limiters.get((url, cluster))
    if limiter is None:
        with _limiters_lock:
            limiter = _limiters.get((url, cluster))
            if limiter is None:
                from .limiter_redis import RedisRateLimiter

                limiter = RedisRateLimiter(url, cluster=cluster) if url else MemoryRateLimiter()
                _limiters[(url, cluster)] = limiter
    return limiter
