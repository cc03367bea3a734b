"""Enforcement: the gateway's "may this key make this call now?" (key, project, balance,
budgets, then the rate limits, which are consumed only when everything else passed)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from projects.keys import api_key_touch

from ..codes import Denial
from ..limiter import Decision
from ..money import format_money
from ..ratelimits import denial_message, rate_limits_consume
from ..selectors.gateway import GatewayKey, gateway_context
from ..timeutils import today_utc


@dataclass(frozen=True)
class AuthorizeDecision:
    status: int
    code: Denial | None = None
    message: str = ""
    key: GatewayKey | None = None
    rate: Decision | None = None  # the rate limits' decision, when they were checked

    @property
    def allowed(self) -> bool:
        return self.status == 200


def _deny(
    code: Denial, message: str, key: GatewayKey | None = None, *, rate: Decision | None = None
) -> AuthorizeDecision:
    return AuthorizeDecision(code.status, code, message, key, rate)


_KEY_MESSAGES = {
    "malformed": "Incorrect API key provided.",
    "unknown": "Incorrect API key provided.",
    "revoked": "This API key has been revoked.",
    "expired": "This API key has expired.",
}


def gateway_authorize(*, raw_key: str, estimated_tokens: int, now: datetime | None = None) -> AuthorizeDecision:
    """May this key make a call of about `estimated_tokens` now? Checks, in the contract's order:
    key, archived project, balance, daily then monthly budget, then the rate limits (the org's
    concurrency, RPM, TPM, TPD and the project's RPM and TPM, billing/ratelimits.py).

    Nothing about the key is cached, so a revoked key fails on the very next call and a tier change
    applies to it. The rate windows are consumed only when every other check passed.
    """
    context = gateway_context(raw_key=raw_key, day=today_utc(now))
    if context.key is None or context.error in _KEY_MESSAGES:
        return _deny(Denial.INVALID_API_KEY, _KEY_MESSAGES[context.error or "unknown"])
    key = context.key
    if context.error == "project_archived":
        return _deny(Denial.PROJECT_ARCHIVED, "This API key's project is archived.", key)
    state = context.state
    if state.balance <= 0:
        return _deny(
            Denial.INSUFFICIENT_BALANCE,
            "Your organization's balance is exhausted. Top up to continue making API calls.", key,
        )
    if key.daily_budget is not None and state.day_spent >= key.daily_budget:
        return _deny(
            Denial.DAILY_BUDGET_EXCEEDED,
            f"This project has reached its daily budget of {format_money(key.daily_budget)}. "
            "Calls are denied until 00:00 UTC or until a project admin raises the budget.", key,
        )
    if key.monthly_budget is not None and state.month_spent >= key.monthly_budget:
        return _deny(
            Denial.MONTHLY_BUDGET_EXCEEDED,
            f"This project has reached its monthly budget of {format_money(key.monthly_budget)}. "
            "Calls are denied until the 1st of next month (UTC) or until a project admin raises the budget.", key,
        )
    rate = rate_limits_consume(key=key, estimated_tokens=estimated_tokens)
    if not rate.allowed:
        return _deny(Denial.RATE_LIMITED, denial_message(rate), key, rate=rate)
    api_key_touch(key)
    return AuthorizeDecision(200, key=key, rate=rate)
