from __future__ import annotations

from decimal import Decimal

import pytest

from orgs.limits import limit_check, organization_limit, organization_rate_limits
from orgs.models import Organization, VerificationTier


def test_tier_limits_and_override():
    org = Organization(name="A", registered_email="a@b.test")
    assert (organization_limit(org, "projects"), organization_limit(org, "api_keys")) == (20, 50)
    org.verification_tier = VerificationTier.ENTERPRISE
    assert (organization_limit(org, "projects"), organization_limit(org, "api_keys")) == (50, 100)
    org.projects_limit_override = 75
    assert organization_limit(org, "projects") == 75


def test_limit_check_at_the_edge():
    org = Organization(name="A", registered_email="a@b.test")
    assert limit_check(organization=org, resource="projects", used=19).allowed
    decision = limit_check(organization=org, resource="projects", used=20)
    assert not decision.allowed
    assert "limit of 20 projects" in decision.message


@pytest.mark.parametrize(
    ("topups", "tier", "tpm"),
    [("0", "Tier0", 500_000), ("9.99", "Tier0", 500_000), ("10", "Tier1", 2_000_000), ("3000", "Tier5", 5_000_000)],
)
def test_rate_tier_follows_cumulative_topups(topups, tier, tpm):
    org = Organization(name="A", registered_email="a@b.test", cumulative_topups=Decimal(topups))
    limits = organization_rate_limits(org)
    assert (limits.tier, limits.tpm) == (tier, tpm)


def test_rate_tier_override_wins():
    org = Organization(name="A", registered_email="a@b.test", rate_tier_override="Tier3")
    assert organization_rate_limits(org).rpm == 5000
