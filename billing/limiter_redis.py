"""The rate limiter on Redis: one Lua script per authorize (billing/limiter.py has the rules).

Every key a script touches carries the organization's hash tag `{org-…}`, so on a Redis Cluster
(`CONSOLE_REDIS_CLUSTER`) each call lands on the one node that owns the organization's slot and
runs there unchanged. For a few seconds after a failure Redis is not retried, so an outage does not
add a connection timeout to every call.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import redis
from redis.cluster import RedisCluster

from .limiter import (
    BUCKET_TTL_SECONDS,
    CHECKS,
    DAY_TTL_SECONDS,
    Correction,
    Decision,
    Limits,
    Usage,
    authorization_id_make,
    bucket_keys,
    corrected_key,
    corrected_marker_ms,
    decide,
    estimate_returnable,
    fail_open,
    group_by_organization,
    lease_seconds,
    leases_key,
    new_nonce,
    record_failure,
    window,
)

RETRY_REDIS_AFTER_SECONDS = 5.0
_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterError)

# Reads the windows into `used` (shared by both scripts).
_READ_LUA = """
local now = tonumber(ARGV[1])
local weight = tonumber(ARGV[2]) / 1000000
local buckets = {}  -- current and previous bucket of each sliding window, for Retry-After
local function slide(cur, prev)
  local c = tonumber(redis.call('GET', cur) or '0')
  local p = tonumber(redis.call('GET', prev) or '0')
  local v = c + math.floor(p * weight)
  buckets[#buckets + 1] = math.max(c, 0)
  buckets[#buckets + 1] = math.max(p, 0)
  if v < 0 then return 0 end
  return v
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local day = tonumber(redis.call('GET', KEYS[6]) or '0')
if day < 0 then day = 0 end
local org_requests = slide(KEYS[2], KEYS[3])
local org_tokens = slide(KEYS[4], KEYS[5])
local project_requests = slide(KEYS[7], KEYS[8])
local project_tokens = slide(KEYS[9], KEYS[10])
local used = {redis.call('ZCARD', KEYS[1]), org_requests, org_tokens, day, project_requests, project_tokens}
"""

# KEYS: leases, org requests cur/prev, org tokens cur/prev, org day, project requests cur/prev,
#       project tokens cur/prev.
# ARGV: now (ms), weight of the previous minute (per million), tokens, lease (ms), nonce,
#       then the limits in CHECKS order (-1: none), then the minute and day bucket TTLs.
# Returns {index of the first full window in CHECKS order (0 = allowed), the six used values, the
# current and previous buckets of the four sliding windows}.
_CONSUME_LUA = _READ_LUA + """
local tokens = tonumber(ARGV[3])
local adds = {1, 1, tokens, tokens, 1, tokens}
local full = 0
for i = 1, 6 do
  local limit = tonumber(ARGV[5 + i])
  if limit >= 0 and used[i] + adds[i] > limit then full = i break end
end
if full == 0 then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[5])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  for _, pair in ipairs({{2, 1}, {4, tokens}, {6, tokens}, {7, 1}, {9, tokens}}) do
    redis.call('INCRBY', KEYS[pair[1]], pair[2])
    redis.call('EXPIRE', KEYS[pair[1]], pair[1] == 6 and ARGV[13] or ARGV[12])
  end
end
return {full, used[1], used[2], used[3], used[4], used[5], used[6], unpack(buckets)}
"""

# Same KEYS and first two ARGV as consume; consumes nothing.
_PEEK_LUA = _READ_LUA + "return used\n"

# KEYS[1]: the organization's leases; then four keys per correction: its authorization's
# "estimate given back" marker, its org tokens, project tokens and org day buckets.
# ARGV[1]: the marker's life (ms); then three per correction: the lease's nonce ("" for none), the
# delta, the estimate it may give back (0 for none). The marker is set in this same atomic step, so
# of the events of one authorization, in one batch or several, only the first gives the estimate
# back. Only buckets still alive are corrected: a minute (or day) that has left its window no
# longer matters.
_CORRECT_LUA = """
for i = 0, (#KEYS - 1) / 4 - 1 do
  local k, a = 1 + 4 * i, 1 + 3 * i
  local delta = tonumber(ARGV[a + 2])
  local estimate = tonumber(ARGV[a + 3])
  if ARGV[a + 1] ~= '' then redis.call('ZREM', KEYS[1], ARGV[a + 1]) end
  if estimate ~= 0 and redis.call('SET', KEYS[k + 1], 1, 'NX', 'PX', ARGV[1]) then delta = delta - estimate end
  if delta ~= 0 then
    for j = k + 2, k + 4 do
      if redis.call('EXISTS', KEYS[j]) == 1 then
        local value = redis.call('INCRBY', KEYS[j], delta)
        if value < 0 then redis.call('SET', KEYS[j], 0, 'KEEPTTL') end
      end
    end
  end
end
return 1
"""

def _keys(organization_id: str, project_id: str, minute: int) -> list[str]:
    cur, prev = bucket_keys(organization_id, project_id, minute), bucket_keys(organization_id, project_id, minute - 1)
    return [
        leases_key(organization_id),
        cur["org_requests"], prev["org_requests"], cur["org_tokens"], prev["org_tokens"], cur["org_day"],
        cur["project_requests"], prev["project_requests"], cur["project_tokens"], prev["project_tokens"],
    ]


def _limit_args(limits: Limits) -> list[int]:
    values = {
        CHECKS[0]: limits.concurrency, CHECKS[1]: limits.org_rpm, CHECKS[2]: limits.org_tpm,
        CHECKS[3]: limits.org_tpd, CHECKS[4]: limits.project_rpm, CHECKS[5]: limits.project_tpm,
    }
    return [-1 if values[check] is None else int(values[check]) for check in CHECKS]  # type: ignore[arg-type]


def _usage(values: list[Any]) -> Usage:
    numbers = [int(v) for v in values]
    concurrency, org_requests, org_tokens, org_tokens_today, project_requests, project_tokens = numbers[:6]
    buckets = numbers[6:14] if len(numbers) == 14 else [0] * 8
    return Usage(concurrency, org_requests, org_tokens, org_tokens_today, project_requests, project_tokens,
                 current=(buckets[0], buckets[2], buckets[4], buckets[6]),
                 previous=(buckets[1], buckets[3], buckets[5], buckets[7]))


class RedisRateLimiter:
    def __init__(self, url: str, *, cluster: bool = False) -> None:
        options: dict[str, Any] = {"socket_connect_timeout": 0.25, "socket_timeout": 0.5}
        self.client: Any = (
            RedisCluster.from_url(url, **options) if cluster
            else redis.Redis.from_url(url, health_check_interval=30, **options)
        )
        self.cluster = cluster
        self._consume = self.client.register_script(_CONSUME_LUA)
        self._peek = self.client.register_script(_PEEK_LUA)
        self._correct = self.client.register_script(_CORRECT_LUA)
        self._skip_until = 0.0

    def _available(self) -> bool:
        return time.monotonic() >= self._skip_until

    def _failed(self, exc: Exception) -> None:
        self._skip_until = time.monotonic() + RETRY_REDIS_AFTER_SECONDS
        record_failure(exc)

    def consume(self, *, organization_id: str, project_id: str, limits: Limits, tokens: int) -> Decision:
        if not self._available():
            record_failure(ConnectionError("redis recently unreachable"))
            return fail_open(limits)
        now = time.time()
        minute, weight = window(now)
        nonce = new_nonce()
        lease_ms = lease_seconds() * 1000
        try:
            full, *used = self._consume(
                keys=_keys(organization_id, project_id, minute),
                args=[int(now * 1000), int(weight * 1_000_000), tokens, lease_ms, nonce,
                      *_limit_args(limits), BUCKET_TTL_SECONDS, DAY_TTL_SECONDS],
            )
        except _ERRORS as exc:
            self._failed(exc)
            return fail_open(limits)
        # The script decided with the same comparisons as decide(), which adds the names and numbers.
        authorization_id = "" if full else authorization_id_make(
            organization_id=organization_id, project_id=project_id, minute=minute, tokens=tokens, nonce=nonce)
        return decide(usage=_usage(used), limits=limits, tokens=tokens, now=now, authorization_id=authorization_id)

    def correct(self, corrections: Iterable[Correction]) -> None:
        grouped = group_by_organization(corrections)
        if not grouped or not self._available():
            return
        now = time.time()
        try:
            pipe = None if self.cluster else self.client.pipeline(transaction=False)
            for organization_id, items in grouped.items():
                keys: list[str] = [leases_key(organization_id)]
                args: list[int | str] = [corrected_marker_ms()]
                for item in items:
                    buckets = bucket_keys(organization_id, item.project_id, item.minute)
                    keys += [corrected_key(organization_id, item.lease),
                             buckets["org_tokens"], buckets["project_tokens"], buckets["org_day"]]
                    args += [item.lease, item.delta, estimate_returnable(item, now)]
                self._correct(keys=keys, args=args, client=pipe)
            if pipe is not None:
                pipe.execute()
        except _ERRORS as exc:
            self._failed(exc)

    def release(self, *, organization_id: str, leases: Iterable[str]) -> None:
        nonces = [nonce for nonce in leases if nonce]
        if not nonces or not self._available():
            return
        try:
            self.client.zrem(leases_key(organization_id), *nonces)
        except _ERRORS as exc:
            self._failed(exc)

    def usage(self, *, organization_id: str, project_id: str | None = None) -> Usage:
        """The windows as they are: read by the gauges, consumes nothing (expired leases are dropped)."""
        if not self._available():
            return Usage()
        now = time.time()
        minute, weight = window(now)
        try:
            used = self._peek(keys=_keys(organization_id, project_id or "-", minute),
                              args=[int(now * 1000), int(weight * 1_000_000)])
        except _ERRORS as exc:
            self._failed(exc)
            return Usage()
        return _usage(used)

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except _ERRORS:
            return False

