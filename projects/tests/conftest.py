"""Project fixtures: one project in the root `org`, and a user for each role around it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from console.models import User
from orgs.models import Organization, Role
from orgs.tests.factories import MembershipFactory
from projects.models import Project, ProjectRole
from projects.services import CreatedKey, api_key_create
from projects.tests.factories import ProjectFactory, ProjectMembershipFactory

# The five kinds of user a project URL must tell apart.
PROJECT_ROLES = ["outsider", "org_member", "project_member", "project_admin", "org_admin"]


@pytest.fixture
def project(org: Organization) -> Project:
    return ProjectFactory(organization=org, name="Chatbot")


def _in_project(org: Organization, project: Project, role: int) -> User:
    user = MembershipFactory(organization=org, role=Role.MEMBER).user
    ProjectMembershipFactory(project=project, user=user, role=role)
    return user


@pytest.fixture
def project_member(org: Organization, project: Project) -> User:
    return _in_project(org, project, ProjectRole.MEMBER)


@pytest.fixture
def project_admin(org: Organization, project: Project) -> User:
    return _in_project(org, project, ProjectRole.ADMIN)


@pytest.fixture
def user_for(request: pytest.FixtureRequest) -> Callable[[str], User]:
    """user_for("outsider" | "org_member" | "project_member" | "project_admin" | "org_admin")."""

    def get(role: str) -> User:
        user: User = request.getfixturevalue(role)
        return user

    return get


@pytest.fixture
def login_as(user_for: Callable[[str], User]) -> Callable[[str], Client]:
    def make(role: str) -> Client:
        client = Client()
        user = user_for(role)
        client.force_login(user)
        client.user = user  # type: ignore[attr-defined]
        return client

    return make


@pytest.fixture
def make_key() -> Callable[..., CreatedKey]:
    def make(project: Project, user: User, name: str = "key", **kwargs: object) -> CreatedKey:
        return api_key_create(project=project, actor=user, name=name, **kwargs)  # type: ignore[arg-type]

    return make
