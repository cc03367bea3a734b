from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import Http404

from orgs.models import Role
from orgs.permissions import access_organization


def test_member_gets_their_membership(org, org_member):
    membership = access_organization(org_member, org.public_id)
    assert membership.organization == org
    assert membership.user == org_member


def test_outsider_gets_404_for_existing_org(org, outsider):
    with pytest.raises(Http404):
        access_organization(outsider, org.public_id)


def test_unknown_org_is_the_same_404(user):
    with pytest.raises(Http404):
        access_organization(user, "org-doesnotexist0000000")


def test_anonymous_gets_404(org):
    with pytest.raises(Http404):
        access_organization(AnonymousUser(), org.public_id)


def test_member_below_min_role_gets_403(org, org_member):
    with pytest.raises(PermissionDenied):
        access_organization(org_member, org.public_id, min_role=Role.ADMIN)


def test_admin_passes_admin_check(org, org_admin):
    assert access_organization(org_admin, org.public_id, min_role=Role.ADMIN).is_admin
