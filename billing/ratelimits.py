"""The organization's shared rate limits as authorize, usage ingest, the release endpoint and the
console's gauges use them. The windows themselves live in billing/limiter.py.

- `rate_limits_consume`: authorize's one atomic decision over concurrency, RPM, TPM and TPD of the
  organization and the project's TPM and RPM, each project value capped by the organization's.
  The tier is computed from the key's row read on this very call, never cached: a top-up or a
  staff override applies to the next call.
- `usage_limiter_corrections` / `limiter_corrections_apply`: when usage arrives, the token windows
  of the minute and day a call was authorized in are corrected to its actual tokens (its estimate
  given back once, however many events report it), and its concurrency lease is freed.
- `authorization_release`: `POST /api/v1/gateway/release` frees a lease before its usage is reported.
- `rate_limit_gauges`: what the windows hold now, for the org overview, Billing and project
  overview; reading consumes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction

from orgs.limits import RateLimits, rate_limits_for

from .codes import RateLimit
from .limiter import (
    WINDOW_SECONDS,
    Correction,
    Decision,
    Limits,
    authorization_parse,
    get_limiter,
)
from .selectors.gateway import GatewayKey

CORRECTION_HORIZON_SECONDS = 86_400  # older calls have left every window (the day's included)


def limits_for(*, rate: RateLimits, project_tpm: int | None, project_rpm: int | None) -> Limits:
    """The windows a call of this project is checked against: the project's own TPM and RPM
    capped by the organization's."""
    return Limits(
        concurrency=rate.concurrency,
        org_rpm=rate.rpm,
        org_tpm=rate.tpm,
        org_tpd=rate.tpd,
        project_rpm=min(project_rpm, rate.rpm) if project_rpm else None,
        project_tpm=min(project_tpm, rate.tpm) if project_tpm else rate.tpm,
    )


def counted_tokens(estimate: int) -> int:
    """What authorize counts for a call: the estimate, but never below the configured minimum."""
    return max(estimate, int(settings.CONSOLE_MIN_ESTIMATED_TOKENS))


def rate_limits_consume(*, key: GatewayKey, estimated_tokens: int) -> Decision:
    """Check and consume every window of the key's organization and project in one atomic step."""
    rate = rate_limits_for(cumulative_topups=key.cumulative_topups, rate_tier_override=key.rate_tier_override)
    limits = limits_for(rate=rate, project_tpm=key.tpm_limit, project_rpm=key.rpm_limit)
    return get_limiter().consume(
        organization_id=key.organization_public_id,
        project_id=key.project_public_id,
        limits=limits,
        tokens=counted_tokens(estimated_tokens),
    )


_LIMIT_WORDS = {
    RateLimit.CONCURRENCY: "concurrent requests",
    RateLimit.REQUESTS_PER_MINUTE: "requests per minute",
    RateLimit.TOKENS_PER_MINUTE: "tokens per minute",
    RateLimit.TOKENS_PER_DAY: "tokens per day",
}


def denial_message(decision: Decision) -> str:
    return (
        f"Rate limit reached: the {decision.scope}'s limit is {decision.limit_value:,} "
        f"{_LIMIT_WORDS[RateLimit(decision.limit)]}. Retry after {decision.retry_after} s."
    )


# --- usage arrival -------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsedCall:
    """What ingest knows of one newly stored event."""

    organization_id: str
    project_id: str
    occurred_at: datetime
    tokens: int  # input + output
    estimated_tokens: int  # the event's own estimate (or the default) when it names no authorization
    authorization_id: str


def usage_limiter_corrections(*, calls: Iterable[UsedCall], now: datetime) -> list[Correction]:
    """Per call: (actual - counted) tokens for the minute and day it was authorized in, and its lease.

    With the authorization's id the minute and the counted estimate are the ones authorize used
    (signed into the id), and the limiter gives that estimate back once per authorization: every
    event of a call reported in several (streamed chunks) adds its actual tokens, only the first
    also takes the estimate off (billing/limiter.py, `estimate_returnable`). Without the id, the
    event's minute and estimate stand in (each such event is taken for a call of its own), and the
    lease expires by itself. An id of another organization or project corrects nothing of theirs.
    """
    horizon = now.timestamp() - CORRECTION_HORIZON_SECONDS
    corrections: list[Correction] = []
    for call in calls:
        authorization = authorization_parse(call.authorization_id) if call.authorization_id else None
        if authorization is not None and (authorization.organization_id, authorization.project_id) == (
            call.organization_id, call.project_id
        ):
            corrections.append(Correction(call.organization_id, call.project_id, authorization.minute,
                                          call.tokens, lease=authorization.nonce, estimate=authorization.tokens))
        elif call.occurred_at.timestamp() >= horizon:
            minute = int(call.occurred_at.timestamp() // WINDOW_SECONDS)
            corrections.append(Correction(call.organization_id, call.project_id, minute,
                                          call.tokens - counted_tokens(call.estimated_tokens)))
    return corrections


def limiter_corrections_apply(corrections: list[Correction]) -> None:
    """After the usage's transaction commits (a rolled-back batch corrects nothing)."""
    if corrections:
        transaction.on_commit(lambda: get_limiter().correct(corrections))


def authorization_release(*, authorization_id: str) -> bool:
    """Free the concurrency lease of a call authorize allowed; False for an id it did not issue.
    Releasing twice, or after the usage report, is harmless."""
    authorization = authorization_parse(authorization_id)
    if authorization is None:
        return False
    get_limiter().release(organization_id=authorization.organization_id, leases=[authorization.nonce])
    return True


# --- gauges ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gauge:
    name: str
    used: int
    limit: int | None  # None: unlimited

    @property
    def percent(self) -> int:
        if not self.limit:
            return 0
        return min(100, round(100 * self.used / self.limit))


def rate_limit_gauges(*, rate: RateLimits, organization_id: str, project_id: str | None = None,
                      project_tpm: int | None = None, project_rpm: int | None = None) -> list[Gauge]:
    """Live use against each limit: the organization's four, or the project's own two windows."""
    usage = get_limiter().usage(organization_id=organization_id, project_id=project_id)
    if project_id is None:
        return [
            Gauge("Concurrent requests", usage.concurrency, rate.concurrency),
            Gauge("Requests this minute", usage.org_requests, rate.rpm),
            Gauge("Tokens this minute", usage.org_tokens, rate.tpm),
            Gauge("Tokens today (UTC)", usage.org_tokens_today, rate.tpd),
        ]
    limits = limits_for(rate=rate, project_tpm=project_tpm, project_rpm=project_rpm)
    return [
        Gauge("Requests this minute", usage.project_requests, limits.requests_limit),
        Gauge("Tokens this minute", usage.project_tokens, limits.project_tpm),
    ]
