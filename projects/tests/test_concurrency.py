"""Two creations racing at the tier limit, on real PostgreSQL connections: exactly one wins."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection

from orgs.limits import LimitReached
from orgs.models import Membership, Role
from orgs.services import membership_role_change
from orgs.tests.factories import MembershipFactory
from projects.models import APIKey, Project, RevocationReason
from projects.services import api_key_create, project_create
from projects.tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db(transaction=True)


def race(make: Callable[[int], object]) -> list[str]:
    """Run make(0) and make(1) in two threads released together; returns "ok" / "limit" / "denied"
    per thread."""
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=5)
            make(i)
            outcomes.append("ok")
        except LimitReached:
            outcomes.append("limit")
        except PermissionDenied:
            outcomes.append("denied")
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    return sorted(outcomes)


def test_two_projects_created_at_once_at_the_limit(org, org_admin):
    org.projects_limit_override = 1
    org.save()
    outcomes = race(lambda i: project_create(organization=org, actor=org_admin, name=f"P{i}"))
    assert outcomes == ["limit", "ok"]
    assert Project.objects.filter(organization=org).count() == 1


def test_two_keys_created_at_once_at_the_limit_in_different_projects(org, project, project_member, org_admin):
    org.api_keys_limit_override = 1
    org.save()
    makers = [(project, project_member), (ProjectFactory(organization=org), org_admin)]
    outcomes = race(lambda i: api_key_create(project=makers[i][0], actor=makers[i][1], name=f"k{i}"))
    assert outcomes == ["limit", "ok"]
    assert APIKey.objects.filter(organization=org).count() == 1


def test_an_admin_creating_a_key_while_being_demoted_never_keeps_it(org, project, org_admin):
    other_admin = MembershipFactory(organization=org, role=Role.ADMIN).user
    demoted = Membership.objects.get(user=org_admin)

    def make(i: int) -> object:
        if i == 0:
            return membership_role_change(membership=demoted, actor=other_admin, role=Role.MEMBER)
        return api_key_create(project=project, actor=org_admin, name="made while demoted")

    outcomes = race(make)
    assert outcomes in (["denied", "ok"], ["ok", "ok"])  # the key came too late, or came first and died
    assert Membership.objects.get(pk=demoted.pk).role == Role.MEMBER
    assert not APIKey.objects.filter(created_by=org_admin, revoked_at__isnull=True).exists()
    if outcomes == ["ok", "ok"]:
        assert APIKey.objects.get(created_by=org_admin).revoked_reason == RevocationReason.ROLE_CHANGED
