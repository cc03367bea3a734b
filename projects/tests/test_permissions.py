"""Every project URL against the five kinds of user: outsiders and non-members get 404."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from orgs.models import Role
from orgs.tests.factories import MembershipFactory
from projects.models import ProjectMembership, ProjectRole
from projects.permissions import access_project
from projects.services import api_key_create
from projects.tests.conftest import PROJECT_ROLES

pytestmark = pytest.mark.django_db

R, F, N = 200, 403, 404  # readable, forbidden, not found (302 = done and redirected)

# url name, method, POST data, expected status per role in PROJECT_ROLES order:
# outsider, org member not in project, project member, project admin, org admin.
MATRIX = [
    ("overview", "get", None, [N, N, R, R, R]),
    ("keys", "get", None, [N, N, R, R, R]),
    ("key_create", "get", None, [N, N, R, R, R]),
    ("key_create", "post", {"name": "mine"}, [N, N, R, R, R]),  # 200: the page showing the new key
    ("key_revoke", "get", None, [N, N, F, R, R]),  # the key belongs to another project member
    ("key_revoke", "post", None, [N, N, F, 302, 302]),
    ("key_roll", "get", None, [N, N, F, F, F]),  # only its owner rolls a key
    ("members", "get", None, [N, N, R, R, R]),
    ("members", "post", "add", [N, N, F, 302, 302]),
    ("member_role", "post", {"role": int(ProjectRole.ADMIN)}, [N, N, F, 302, 302]),
    ("member_remove", "get", None, [N, N, F, R, R]),
    ("member_remove", "post", None, [N, N, F, 302, 302]),
    ("settings", "get", None, [N, N, R, R, R]),
    ("settings_general", "post", {"name": "Renamed"}, [N, N, F, F, 302]),
    ("settings_limits", "post", {"tpm_limit": "1000"}, [N, N, F, 302, 302]),
    ("archive", "post", None, [N, N, F, F, 302]),
    ("restore", "post", None, [N, N, F, F, 302]),
]


@pytest.fixture
def owner(org, project):
    """Another project member, who owns the key and is the member acted upon."""
    user = MembershipFactory(organization=org, role=Role.MEMBER).user
    ProjectMembership.objects.create(project=project, user=user, role=ProjectRole.MEMBER)
    return user


@pytest.mark.parametrize("role_index", range(5), ids=PROJECT_ROLES)
@pytest.mark.parametrize(("name", "method", "data", "expected"), MATRIX, ids=[f"{m[0]}-{m[1]}" for m in MATRIX])
def test_project_url_role_matrix(org, project, owner, login_as, name, method, data, expected, role_index):
    client: Client = login_as(PROJECT_ROLES[role_index])
    key = api_key_create(project=project, actor=owner, name="owned").key
    kwargs = {"org_id": org.public_id, "project_id": project.public_id}
    if name.startswith("key_") and name != "key_create":
        kwargs["key_id"] = key.public_id
    if name.startswith("member_"):
        kwargs["member_id"] = ProjectMembership.objects.get(project=project, user=owner).pk
    if data == "add":
        data = {"user": MembershipFactory(organization=org).user.pk, "role": int(ProjectRole.MEMBER)}
    response = getattr(client, method)(reverse(f"projects:{name}", kwargs=kwargs), data or {})
    assert response.status_code == expected[role_index]


@pytest.mark.parametrize(
    ("role", "status"),
    [("outsider", N), ("org_member", R), ("project_member", R), ("project_admin", R), ("org_admin", R)],
)
def test_project_list_is_for_every_org_member(org, login_as, role, status):
    assert login_as(role).get(reverse("projects:list", args=[org.public_id])).status_code == status


@pytest.mark.parametrize(
    ("role", "status"),
    [("outsider", N), ("org_member", F), ("project_member", F), ("project_admin", F), ("org_admin", R)],
)
def test_only_org_admins_open_the_create_page(org, login_as, role, status):
    assert login_as(role).get(reverse("projects:create", args=[org.public_id])).status_code == status


def test_anonymous_is_sent_to_login(client, org, project):
    response = client.get(reverse("projects:overview", args=[org.public_id, project.public_id]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_ids_of_other_orgs_and_projects_are_404(org, project, org_admin, login_as):
    from projects.tests.factories import ProjectFactory

    foreign = ProjectFactory()  # another organization's project
    client = login_as("org_admin")
    assert client.get(reverse("projects:overview", args=[org.public_id, foreign.public_id])).status_code == N
    assert client.get(reverse("projects:overview", args=[org.public_id, "proj_nope"])).status_code == N
    foreign_key = api_key_create(
        project=foreign, actor=MembershipFactory(organization=foreign.organization, role=Role.ADMIN).user, name="x"
    ).key
    url = reverse("projects:key_revoke", args=[org.public_id, project.public_id, foreign_key.public_id])
    assert client.get(url).status_code == N


def test_access_project_gives_org_admins_the_admin_role(org, project, org_admin, project_member):
    admin_access = access_project(org_admin, org.public_id, project.public_id)
    assert (admin_access.role, admin_access.project_membership, admin_access.role_label) == (
        ProjectRole.ADMIN, None, "Organization Administrator",
    )
    member_access = access_project(project_member, org.public_id, project.public_id)
    assert (member_access.is_admin, member_access.role_label) == (False, "General Project Member")
