from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from orgs.models import Role
from orgs.tests.factories import MembershipFactory
from projects.models import APIKey, ProjectMembership
from projects.selectors import active_projects_for_organization, api_key_limit, project_members, project_stats
from projects.services import api_key_revoke, api_key_roll
from projects.tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def test_active_projects_for_an_invitation_form(org, project):
    ProjectFactory(organization=org, archived_at=timezone.now())
    ProjectFactory()  # another organization's
    assert list(active_projects_for_organization(organization=org)) == [project]


def test_rolled_revoked_and_expired_keys_do_not_count_against_the_limit(org, project, project_member, make_key):
    rolled = make_key(project, project_member)
    api_key_roll(key=rolled.key, actor=project_member, overlap=timedelta(days=1))
    api_key_revoke(key=make_key(project, project_member).key, actor=project_member)
    expiring = make_key(project, project_member, expires_at=timezone.now() + timedelta(days=1))
    APIKey.objects.filter(pk=expiring.key.pk).update(expires_at=timezone.now())
    assert api_key_limit(organization=org).used == 1  # only the roll's replacement
    stats = project_stats(project=project)
    assert (stats.member_count, stats.working_key_count) == (1, 2)  # the rolled key still works


def test_member_list_counts_each_members_unrevoked_keys(project, project_member, project_admin, make_key):
    make_key(project, project_member)
    api_key_revoke(key=make_key(project, project_member).key, actor=project_member)
    counts = {m.user: m.key_count for m in project_members(project=project)}
    assert counts == {project_member: 1, project_admin: 0}


def _grow(org, project, make_key, n):
    for _ in range(n):
        user = MembershipFactory(organization=org, role=Role.MEMBER).user
        ProjectMembership.objects.create(project=project, user=user)
        make_key(project, user)
        ProjectFactory(organization=org)


@pytest.mark.parametrize("name", ["keys", "members", "list"])
def test_pages_do_not_query_per_row(org, project, make_key, login_as, django_assert_max_num_queries, name):
    client = login_as("org_admin")
    kwargs = {"org_id": org.public_id} if name == "list" else {"org_id": org.public_id, "project_id": project.public_id}
    page_url = reverse(f"projects:{name}", kwargs=kwargs)
    _grow(org, project, make_key, 1)
    with django_assert_max_num_queries(100) as few:
        client.get(page_url)
    _grow(org, project, make_key, 6)
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(page_url)
