from __future__ import annotations

import factory

from console.tests.factories import UserFactory
from orgs.tests.factories import OrganizationFactory
from projects.models import Project, ProjectMembership, ProjectRole


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Project {n}")
    description = "A test project"


class ProjectMembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProjectMembership

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory)
    role = ProjectRole.MEMBER
