"""For bench/ratelimits.py only: console.wsgi's application with a bench rate tier whose limits are
never reached (so every call does the full work and none is denied). With BENCH_TPM_ONLY=1 the
rate-limit step is today's-path baseline: the organization's and the project's TPM only, the Lua
script authorize ran before issue 12 (kept here verbatim). Not part of the product."""

from __future__ import annotations

import math
import os
import time
from typing import Any

from unlimited_tier import never_reached_tiers

from console.wsgi import application as console_application

never_reached_tiers()

# The TPM-only script as billing/limiter.py had it before the four limits.
_TPM_ONLY_LUA = """
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

if os.environ.get("BENCH_TPM_ONLY") == "1":
    from billing.limiter import Decision, get_limiter
    from billing.services import enforcement
    from orgs.limits import rate_limits_for

    _script: Any = None

    def tpm_only_consume(*, key: Any, estimated_tokens: int) -> Decision:
        global _script
        limiter: Any = get_limiter()
        if _script is None:
            _script = limiter.client.register_script(_TPM_ONLY_LUA)
        org_tpm = rate_limits_for(cumulative_topups=key.cumulative_topups,
                                  rate_tier_override=key.rate_tier_override).tpm
        project_tpm = min(key.tpm_limit, org_tpm) if key.tpm_limit else org_tpm
        now = time.time()
        minute = int(now // 60)
        weight = (60 - (now - minute * 60)) / 60
        tag = "{" + key.organization_public_id + "}"
        keys = [f"tpm:{tag}:org:{minute}", f"tpm:{tag}:org:{minute - 1}",
                f"tpm:{tag}:project:{key.project_public_id}:{minute}",
                f"tpm:{tag}:project:{key.project_public_id}:{minute - 1}"]
        allowed, org_used, project_used = _script(keys=keys, args=[estimated_tokens, org_tpm, project_tpm,
                                                                   int(weight * 1_000_000), 180])
        remaining = max(0, min(org_tpm - org_used, project_tpm - project_used) - estimated_tokens)
        return Decision(allowed=bool(allowed), tokens_limit=project_tpm, tokens_remaining=remaining,
                        reset_seconds=math.ceil(60 - now % 60))

    enforcement.rate_limits_consume = tpm_only_consume  # type: ignore[assignment]


def application(environ: dict[str, Any], start_response: Any) -> Any:
    return console_application(environ, start_response)
