from __future__ import annotations

from collections.abc import Callable

import pytest

from orgs import hooks
from orgs.models import Organization
from orgs.services import IssuedInvitation, invitation_create


@pytest.fixture
def invite(ready_org: Organization, org_admin) -> Callable[..., IssuedInvitation]:  # type: ignore[no-untyped-def]
    """invite("ana@example.com", role=Role.MEMBER, valid_days=None) by the org's admin."""

    def make(email: str = "ana@example.com", **kwargs: object) -> IssuedInvitation:
        kwargs.setdefault("role", 10)
        return invitation_create(organization=ready_org, actor=org_admin, email=email, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def removal_hook(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """Stands in for the projects app's handler (3 projects, 5 keys, last used 2 hours ago) and
    records each call; whatever is really registered is set aside for the test."""
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    calls: list[dict[str, object]] = []

    def handler(*, membership, actor):  # type: ignore[no-untyped-def]
        calls.append(
            {
                "membership": membership,
                "actor": actor,
                "in_transaction": connection.in_atomic_block,
                "row_exists": type(membership).objects.filter(pk=membership.pk).exists(),
            }
        )

    def impact(*, membership):  # type: ignore[no-untyped-def]
        return hooks.RemovalImpact(projects=3, api_keys=5, api_keys_last_used_at=timezone.now() - timedelta(hours=2))

    monkeypatch.setattr(hooks, "_removal_handlers", [handler])
    monkeypatch.setattr(hooks, "_impact_providers", [impact])
    return calls


PROJECT_CHOICES = [("proj_alpha", "Alpha"), ("proj_beta", "Beta")]
PROJECT_ROLES = [(10, "General Project Member"), (30, "Project Administrator")]


@pytest.fixture
def project_choices(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Stands in for the projects app's invitation choices: projects Alpha and Beta of any organization."""
    monkeypatch.setattr(hooks, "_invitation_project_choices", [lambda organization: list(PROJECT_CHOICES)])
    monkeypatch.setattr(hooks, "_invitation_project_roles", list(PROJECT_ROLES))
    return PROJECT_CHOICES


@pytest.fixture
def no_project_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hooks, "_invitation_project_choices", [])
    monkeypatch.setattr(hooks, "_invitation_project_roles", [])
