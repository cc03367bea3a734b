"""Tier limits (projects, API keys) and rate limits (RPM/TPM...) of an organization.

Verification tier decides how many projects and keys; rate tier (from cumulative top-ups, or a
staff override) decides throughput. Both tables are settings an operator can change.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from django.conf import settings
from django.urls import reverse

from console.errors import DomainError

from .models import Organization

Resource = Literal["projects", "api_keys"]
RESOURCE_LABELS: dict[str, str] = {"projects": "projects", "api_keys": "API keys"}


@dataclass(frozen=True)
class LimitDecision:
    allowed: bool
    resource: str
    used: int
    limit: int

    @property
    def message(self) -> str:
        label = RESOURCE_LABELS[self.resource]
        if self.allowed:
            return f"{self.used} of {self.limit} {label} used."
        return (
            f"Your organization has reached its limit of {self.limit} {label}. "
            "Contact Sales to raise it."
        )


class LimitReached(DomainError):
    """A tier limit refused a creation; pages show the decision with its Contact Sales link."""

    def __init__(self, decision: LimitDecision) -> None:
        super().__init__(decision.message, code="limit_reached")
        self.decision = decision


def contact_sales_url(organization: Organization, need: str = "") -> str:
    """The Contact Sales form with the need preselected ("projects", "api_keys", "rate_limits", "other")."""
    url = reverse("orgs:contact_sales", args=[organization.public_id])
    return f"{url}?need={need}" if need else url


def organization_limit(organization: Organization, resource: Resource) -> int:
    override = getattr(organization, f"{resource}_limit_override")
    if override is not None:
        return int(override)
    return int(settings.CONSOLE_TIER_LIMITS[organization.verification_tier][resource])


def limit_check(*, organization: Organization, resource: Resource, used: int, adding: int = 1) -> LimitDecision:
    """May `adding` more of the resource be created? The caller counts `used` under a lock on the org row."""
    limit = organization_limit(organization, resource)
    return LimitDecision(allowed=used + adding <= limit, resource=resource, used=used, limit=limit)


@dataclass(frozen=True)
class RateLimits:
    tier: str
    concurrency: int
    rpm: int
    tpm: int
    tpd: int | None  # None = unlimited


def _tier_row(row: dict[str, object]) -> RateLimits:
    tpd = row["tpd"]
    return RateLimits(
        tier=str(row["name"]),
        concurrency=int(row["concurrency"]),  # type: ignore[call-overload]
        rpm=int(row["rpm"]),  # type: ignore[call-overload]
        tpm=int(row["tpm"]),  # type: ignore[call-overload]
        tpd=None if tpd is None else int(tpd),  # type: ignore[call-overload]
    )


def organization_rate_limits(organization: Organization) -> RateLimits:
    """The org's shared rate limits: the highest tier its cumulative top-ups reach (floor: the first)."""
    return rate_limits_for(
        cumulative_topups=organization.cumulative_topups, rate_tier_override=organization.rate_tier_override
    )


def rate_limits_for(*, cumulative_topups: Decimal, rate_tier_override: str) -> RateLimits:
    """organization_rate_limits on plain values (the gateway's fast path has no Organization instance)."""
    tiers: list[dict[str, object]] = settings.CONSOLE_RATE_TIERS
    if rate_tier_override:
        for row in tiers:
            if row["name"] == rate_tier_override:
                return _tier_row(row)
    reached = tiers[0]
    total = Decimal(cumulative_topups)
    for row in tiers:
        if total >= Decimal(str(row["min_topup"])):
            reached = row
    return _tier_row(reached)
