"""Tokens-per-minute limits of an organization and of a project, checked and consumed together.

A sliding window over the last 60 seconds, approximated with two fixed one-minute buckets: the
count is the current minute's tokens plus the previous minute's weighted by the part of it still
inside the window. Buckets are keys that expire on their own, so nothing needs cleaning up.

`authorize` consumes the caller's estimate; usage ingest later corrects the bucket of the minute
the call happened in by (actual - estimate), so the window converges on the real consumption.

With Redis (`REDIS_URL`), one Lua script per call checks and consumes the organization's and the
project's windows atomically (all keys share the organization's hash tag, so it also runs on a
cluster). Without Redis — the embedded `make run` default — an in-process limiter with the same
interface does the same under a lock (one web process: exact; several: per process).

If Redis cannot be reached the limiter fails **open**: the call is allowed, a warning is logged,
and a counter that `/readyz` reports goes up. For a few seconds after a failure Redis is not
retried, so an outage does not add a connection timeout to every call.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import redis
import structlog
from django.conf import settings

logger = structlog.get_logger(__name__)

WINDOW_SECONDS = 60
BUCKET_TTL_SECONDS = 3 * WINDOW_SECONDS  # the previous bucket must outlive the current minute
RETRY_REDIS_AFTER_SECONDS = 5.0


@dataclass(frozen=True)
class TpmDecision:
    allowed: bool
    limit: int  # the limit reported to the caller: the project's effective TPM
    remaining: int
    retry_after: int  # seconds; 0 when allowed
    scope: str = ""  # "organization" | "project" when denied
    degraded: bool = False  # True when the limiter failed open


@dataclass(frozen=True)
class TpmCorrection:
    """Tokens to add (or, negative, give back) to the buckets of the minute a call happened in."""

    organization_id: str
    project_id: str
    minute: int  # unix time // 60
    delta: int


class TokenLimiter(Protocol):
    def consume(
        self, *, organization_id: str, organization_tpm: int, project_id: str, project_tpm: int, tokens: int
    ) -> TpmDecision: ...

    def correct(self, corrections: Iterable[TpmCorrection]) -> None: ...

    def ping(self) -> bool: ...


def _window(now: float) -> tuple[int, float]:
    """The current minute and the weight of the previous minute still inside the window."""
    minute = int(now // WINDOW_SECONDS)
    elapsed = now - minute * WINDOW_SECONDS
    return minute, (WINDOW_SECONDS - elapsed) / WINDOW_SECONDS


def _retry_after(now: float) -> int:
    """When the current bucket becomes the (down-weighted) previous one."""
    return max(1, math.ceil(WINDOW_SECONDS - (now % WINDOW_SECONDS)))


def _decide(
    *, org_used: int, org_tpm: int, project_used: int, project_tpm: int, tokens: int, now: float
) -> TpmDecision:
    if org_used + tokens > org_tpm:
        scope = "organization"
    elif project_used + tokens > project_tpm:
        scope = "project"
    else:
        remaining = min(org_tpm - org_used, project_tpm - project_used) - tokens
        return TpmDecision(allowed=True, limit=project_tpm, remaining=max(0, remaining), retry_after=0)
    remaining = max(0, min(org_tpm - org_used, project_tpm - project_used))
    return TpmDecision(
        allowed=False, limit=project_tpm, remaining=remaining, retry_after=_retry_after(now), scope=scope
    )


# --- failure accounting (reported by /readyz) --------------------------------------------------

_failures_lock = threading.Lock()
_failures = {"count": 0, "last_at": 0.0}


def _record_failure(exc: Exception) -> None:
    with _failures_lock:
        _failures["count"] += 1
        _failures["last_at"] = time.time()
    logger.warning("tpm_limiter_unavailable_failing_open", error=exc.__class__.__name__)


def limiter_failures() -> tuple[int, float]:
    """How many times the limiter failed open in this process, and when it last did."""
    with _failures_lock:
        return int(_failures["count"]), float(_failures["last_at"])


# --- Redis --------------------------------------------------------------------------------------

# KEYS: org current, org previous, project current, project previous.
# ARGV: tokens, org TPM, project TPM, weight of the previous minute (per million), TTL.
# Returns {allowed (1|0), org tokens used, project tokens used} (used = before this call).
_CONSUME_LUA = """
local tokens = tonumber(ARGV[1])
local weight = tonumber(ARGV[4]) / 1000000
local org = tonumber(redis.call('GET', KEYS[1]) or '0')
    + math.floor(tonumber(redis.call('GET', KEYS[2]) or '0') * weight)
local project = tonumber(redis.call('GET', KEYS[3]) or '0')
    + math.floor(tonumber(redis.call('GET', KEYS[4]) or '0') * weight)
if org < 0 then org = 0 end
if project < 0 then project = 0 end
if org + tokens > tonumber(ARGV[2]) or project + tokens > tonumber(ARGV[3]) then
  return {0, org, project}
end
redis.call('INCRBY', KEYS[1], tokens)
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('INCRBY', KEYS[3], tokens)
redis.call('EXPIRE', KEYS[3], ARGV[5])
return {1, org, project}
"""

# KEYS: org bucket, project bucket of one minute. ARGV: delta. Only buckets still alive are
# corrected: a minute that has left the window no longer matters.
_CORRECT_LUA = """
for i = 1, 2 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local value = redis.call('INCRBY', KEYS[i], ARGV[1])
    if value < 0 then redis.call('SET', KEYS[i], 0, 'KEEPTTL') end
  end
end
return 1
"""


def _keys(organization_id: str, project_id: str, minute: int) -> tuple[str, str]:
    tag = "{" + organization_id + "}"
    return f"tpm:{tag}:org:{minute}", f"tpm:{tag}:project:{project_id}:{minute}"


class RedisTokenLimiter:
    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(
            url, socket_connect_timeout=0.25, socket_timeout=0.5, health_check_interval=30
        )
        self._consume = self.client.register_script(_CONSUME_LUA)
        self._correct = self.client.register_script(_CORRECT_LUA)
        self._skip_until = 0.0

    def _available(self) -> bool:
        return time.monotonic() >= self._skip_until

    def _failed(self, exc: Exception) -> None:
        self._skip_until = time.monotonic() + RETRY_REDIS_AFTER_SECONDS
        _record_failure(exc)

    def consume(
        self, *, organization_id: str, organization_tpm: int, project_id: str, project_tpm: int, tokens: int
    ) -> TpmDecision:
        if not self._available():
            _record_failure(ConnectionError("redis recently unreachable"))
            return TpmDecision(allowed=True, limit=project_tpm, remaining=project_tpm, retry_after=0, degraded=True)
        now = time.time()
        minute, weight = _window(now)
        org_now, project_now = _keys(organization_id, project_id, minute)
        org_prev, project_prev = _keys(organization_id, project_id, minute - 1)
        try:
            _allowed, org_used, project_used = self._consume(
                keys=[org_now, org_prev, project_now, project_prev],
                args=[tokens, organization_tpm, project_tpm, int(weight * 1_000_000), BUCKET_TTL_SECONDS],
            )
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self._failed(exc)
            return TpmDecision(allowed=True, limit=project_tpm, remaining=project_tpm, retry_after=0, degraded=True)
        # The script decided with the same comparison as _decide, which adds the scope and the numbers.
        return _decide(
            org_used=int(org_used), org_tpm=organization_tpm, project_used=int(project_used),
            project_tpm=project_tpm, tokens=tokens, now=now,
        )

    def correct(self, corrections: Iterable[TpmCorrection]) -> None:
        items = [c for c in corrections if c.delta]
        if not items or not self._available():
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for item in items:
                self._correct(keys=list(_keys(item.organization_id, item.project_id, item.minute)),
                              args=[item.delta], client=pipe)
            pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self._failed(exc)

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except (redis.ConnectionError, redis.TimeoutError):
            return False


# --- in-process ------------------------------------------------------------------------------------


class MemoryTokenLimiter:
    """The same windows in a dict under a lock, for a single process without Redis."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[int, float]] = {}  # key -> (tokens, expires at)

    def _get(self, key: str, now: float) -> int:
        value, expires = self._buckets.get(key, (0, 0.0))
        return max(0, value) if expires > now else 0

    def _purge(self, now: float) -> None:
        if len(self._buckets) > 10_000:
            self._buckets = {k: v for k, v in self._buckets.items() if v[1] > now}

    def consume(
        self, *, organization_id: str, organization_tpm: int, project_id: str, project_tpm: int, tokens: int
    ) -> TpmDecision:
        now = time.time()
        minute, weight = _window(now)
        org_now, project_now = _keys(organization_id, project_id, minute)
        org_prev, project_prev = _keys(organization_id, project_id, minute - 1)
        with self._lock:
            self._purge(now)
            org_used = self._get(org_now, now) + math.floor(self._get(org_prev, now) * weight)
            project_used = self._get(project_now, now) + math.floor(self._get(project_prev, now) * weight)
            decision = _decide(
                org_used=org_used, org_tpm=organization_tpm, project_used=project_used,
                project_tpm=project_tpm, tokens=tokens, now=now,
            )
            if decision.allowed:
                expires = now + BUCKET_TTL_SECONDS
                for key in (org_now, project_now):
                    self._buckets[key] = (self._get(key, now) + tokens, expires)
        return decision

    def correct(self, corrections: Iterable[TpmCorrection]) -> None:
        now = time.time()
        with self._lock:
            for item in corrections:
                for key in _keys(item.organization_id, item.project_id, item.minute):
                    value, expires = self._buckets.get(key, (0, 0.0))
                    if expires > now:
                        self._buckets[key] = (max(0, value + item.delta), expires)

    def ping(self) -> bool:
        return True


_limiters: dict[str, TokenLimiter] = {}
_limiters_lock = threading.Lock()


def get_limiter() -> TokenLimiter:
    """The process's limiter for the configured REDIS_URL (in-process when there is none)."""
    url: str = getattr(settings, "REDIS_URL", "") or ""
    limiter = _limiters.get(url)
    if limiter is None:
        with _limiters_lock:
            limiter = _limiters.get(url)
            if limiter is None:
                limiter = RedisTokenLimiter(url) if url else MemoryTokenLimiter()
                _limiters[url] = limiter
    return limiter
