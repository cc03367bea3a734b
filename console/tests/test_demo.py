from __future__ import annotations

import pytest

from console.demo import demo_load
from orgs.selectors import invite_blockers


@pytest.mark.django_db
def test_demo_org_is_verified_so_inviting_works_and_loading_twice_is_harmless():
    first = demo_load()
    again = demo_load()
    assert first.created and not again.created
    assert again.organization == first.organization
    org = again.organization
    assert org.get_verification_tier_display() == "Enterprise Verified"
    assert org.information_complete
    assert invite_blockers(organization=org) == []
