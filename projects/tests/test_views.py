from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from orgs.models import AuditEvent
from projects.keys import api_key_authenticate
from projects.models import APIKey, Project, ProjectMembership, ProjectRole
from projects.services import api_key_create, project_limits_update
from projects.tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
SECRET = re.compile(r"sk-[A-Za-z0-9_\-]{49}")


def url(name, org, project=None, **kwargs):
    if project is None:
        return reverse(f"projects:{name}", kwargs={"org_id": org.public_id, **kwargs})
    return reverse(f"projects:{name}", kwargs={"org_id": org.public_id, "project_id": project.public_id, **kwargs})


# --- list and create ------------------------------------------------------------------------------


def test_org_member_sees_names_and_descriptions_but_links_only_to_own_projects(org, project, login_as):
    other = ProjectFactory(organization=org, name="Billing bot", description="Invoices by chat")
    client = login_as("project_member")
    page = client.get(url("list", org)).content.decode()
    assert "Billing bot" in page and "Invoices by chat" in page
    assert url("overview", org, project) in page
    assert url("overview", org, other) not in page
    assert "Not a member" in page
    assert url("create", org) not in page  # no "Create project" for members


def test_archived_projects_are_hidden_until_asked_for(org, project, login_as):
    ProjectFactory(organization=org, name="Old thing", archived_at=timezone.now())
    client = login_as("org_admin")
    assert "Old thing" not in client.get(url("list", org)).content.decode()
    response = client.get(url("list", org) + "?archived=1", headers=HTMX)
    body = response.content.decode()
    assert "Old thing" in body and "Chatbot" not in body
    assert body.lstrip().startswith('<div id="project-list">')


def test_admin_creates_a_project(org, login_as):
    client = login_as("org_admin")
    response = client.post(url("create", org), {"name": "Search", "description": "Ranking"})
    project = Project.objects.get(name="Search")
    assert response["Location"] == url("overview", org, project)
    page = client.get(response["Location"]).content.decode()
    assert "Project “Search” created." in page
    assert ProjectMembership.objects.get(project=project).user == client.user


def test_create_project_needs_a_name(org, login_as):
    response = login_as("org_admin").post(url("create", org), {"name": "  ", "description": "x"})
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not Project.objects.exists()


def test_at_the_project_limit_the_pages_say_so_and_nothing_is_created(org, project, login_as):
    org.projects_limit_override = 1
    org.save()
    client = login_as("org_admin")
    contact = reverse("orgs:contact_sales", args=[org.public_id]) + "?need=projects"
    for page in (client.get(url("list", org)), client.post(url("create", org), {"name": "Second"})):
        body = page.content.decode()
        assert "reached its limit of 1 projects" in body
        assert contact in body
    assert Project.objects.count() == 1


# --- API keys ---------------------------------------------------------------------------------------


def test_key_plaintext_is_shown_once_and_never_cached(org, project, login_as, caplog):
    client = login_as("project_member")
    with caplog.at_level(logging.DEBUG):
        response = client.post(url("key_create", org, project), {"name": "backend"})
    body = response.content.decode()
    raw = SECRET.search(body).group(0)
    assert "no-store" in response["Cache-Control"]
    assert "only time the secret is shown" in body
    assert (api_key_authenticate(raw).error is None)
    assert raw not in caplog.text
    again = client.get(url("keys", org, project)).content.decode()
    assert raw not in again
    assert f"sk-…{raw[-4:]}" in again  # the hint stays


def test_key_created_through_htmx_swaps_the_keys_panel(org, project, login_as):
    response = login_as("project_member").post(url("key_create", org, project), {"name": "backend"}, headers=HTMX)
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="keys-panel">')
    assert SECRET.search(body)
    assert 'id="modal" hx-swap-oob="true"' in body
    assert "no-store" in response["Cache-Control"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": ""}, "This field is required."),
        ({"name": "x" * 101}, "at most 100 characters"),
        ({"name": "k", "expires_on": "2001-01-01"}, "Choose a date after today."),
        ({"name": "k", "expires_on": "tomorrow"}, "Enter a valid date."),
    ],
)
def test_bad_key_input_is_refused_in_the_modal(org, project, login_as, data, message):
    response = login_as("project_member").post(url("key_create", org, project), data, headers=HTMX)
    assert response.status_code == 200
    assert response["HX-Retarget"] == "#modal"
    assert message in response.content.decode()
    assert not APIKey.objects.exists()


def test_key_with_an_expiry_date_expires_at_midnight_utc(org, project, login_as):
    tomorrow = (timezone.now() + timedelta(days=1)).date()
    login_as("project_member").post(url("key_create", org, project), {"name": "k", "expires_on": tomorrow.isoformat()})
    expires = APIKey.objects.get().expires_at
    assert (expires.date(), expires.hour, expires.minute) == (tomorrow, 0, 0)


def test_at_the_key_limit_the_modal_says_so_and_nothing_is_created(org, project, project_member, make_key, login_as):
    org.api_keys_limit_override = 1
    org.save()
    make_key(project, project_member)
    client = login_as("project_admin")
    body = client.post(url("key_create", org, project), {"name": "more"}).content.decode()
    assert "reached its limit of 1 API keys" in body
    assert reverse("orgs:contact_sales", args=[org.public_id]) + "?need=api_keys" in body
    assert APIKey.objects.count() == 1
    assert "reached its limit of 1 API keys" in client.get(url("keys", org, project)).content.decode()


def test_members_see_others_keys_masked_admins_see_all(org, project, project_member, project_admin, make_key, login_as):
    mine = make_key(project, project_member, "mine")
    theirs = make_key(project, project_admin, "theirs")
    member_page = login_as("project_member").get(url("keys", org, project)).content.decode()
    assert mine.key.hint in member_page
    assert theirs.key.hint not in member_page
    assert theirs.key.masked_hint in member_page
    assert f'aria-label="Revoke key {theirs.key.name}"' not in member_page
    assert f'aria-label="Revoke key {mine.key.name}"' in member_page
    admin_page = login_as("org_admin").get(url("keys", org, project)).content.decode()
    assert mine.key.hint in admin_page and theirs.key.hint in admin_page


def test_revoke_asks_first_then_records_who(org, project, project_member, make_key, login_as):
    created = make_key(project, project_member, "doomed")
    client = login_as("project_admin")
    revoke_url = url("key_revoke", org, project, key_id=created.key.public_id)
    confirm = client.get(revoke_url, headers=HTMX).content.decode()
    assert "Revoke key “doomed”?" in confirm and "cannot be undone" in confirm
    assert (api_key_authenticate(created.raw_key).error is None)  # asking changed nothing
    response = client.post(revoke_url, headers=HTMX)
    body = response.content.decode()
    assert "Revoked" in body and f"by {client.user.display_name}" in body
    assert api_key_authenticate(created.raw_key).error == "revoked"
    assert AuditEvent.objects.filter(action="api_key.revoke", actor=client.user).exists()


def test_roll_shows_the_new_key_and_the_old_ones_deadline(org, project, project_member, make_key, login_as):
    old = make_key(project, project_member, "prod")
    client = login_as("project_member")
    roll_url = url("key_roll", org, project, key_id=old.key.public_id)
    assert "Keep the old key working for" in client.get(roll_url).content.decode()
    response = client.post(roll_url, {"overlap": "6h"})
    body = response.content.decode()
    new_raw = SECRET.search(body).group(0)
    assert "no-store" in response["Cache-Control"]
    assert "Rolled: works until" in body
    assert (api_key_authenticate(old.raw_key).error is None) and (api_key_authenticate(new_raw).error is None)
    expires = APIKey.objects.get(pk=old.key.pk).expires_at
    assert timedelta(hours=5, minutes=59) < expires - timezone.now() <= timedelta(hours=6)


def test_roll_refuses_an_overlap_outside_the_choices(org, project, project_member, make_key, login_as):
    old = make_key(project, project_member)
    roll_url = url("key_roll", org, project, key_id=old.key.public_id)
    response = login_as("project_member").post(roll_url, {"overlap": "30d"})
    assert "Select a valid choice." in response.content.decode()
    assert APIKey.objects.count() == 1


# --- members ------------------------------------------------------------------------------------------


def test_admin_adds_an_org_member_with_htmx(org, project, org_member, login_as):
    client = login_as("project_admin")
    response = client.post(
        url("members", org, project), {"user": org_member.pk, "role": int(ProjectRole.ADMIN)}, headers=HTMX
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="members-panel">')
    assert f"{org_member.email} added as Project Administrator." in body
    assert ProjectMembership.objects.get(project=project, user=org_member).role == ProjectRole.ADMIN


def test_outsiders_cannot_be_added_to_a_project(org, project, outsider, login_as):
    response = login_as("org_admin").post(url("members", org, project), {"user": outsider.pk, "role": 10})
    assert response.status_code == 200
    assert "Choose a member of the organization" in response.content.decode()
    assert not ProjectMembership.objects.filter(user=outsider).exists()


def test_removal_confirmation_lists_keys_and_removal_revokes_them(org, project, project_member, make_key, login_as):
    used = make_key(project, project_member, "used one")
    unused = make_key(project, project_member, "never used")
    APIKey.objects.filter(pk=used.key.pk).update(last_used_at=timezone.now() - timedelta(hours=3))
    pm = ProjectMembership.objects.get(project=project, user=project_member)
    client = login_as("org_admin")
    remove_url = url("member_remove", org, project, member_id=pm.pk)

    confirm = client.get(remove_url).content.decode()
    assert "2 API keys will be revoked at once." in confirm
    assert "3\xa0hours ago" in confirm and "Never used" in confirm
    assert "Remove member and revoke 2 keys" in confirm

    response = client.post(remove_url)
    assert response.status_code == 302
    assert "removed from the project; 2 API keys revoked." in client.get(response["Location"]).content.decode()
    assert not ProjectMembership.objects.filter(pk=pm.pk).exists()
    assert api_key_authenticate(used.raw_key).error == "revoked"
    assert api_key_authenticate(unused.raw_key).error == "revoked"
    keys_page = client.get(url("keys", org, project)).content.decode()
    assert keys_page.count("Revoked (member removed)") == 2


def test_change_role(org, project, project_member, login_as):
    pm = ProjectMembership.objects.get(project=project, user=project_member)
    client = login_as("project_admin")
    response = client.post(url("member_role", org, project, member_id=pm.pk), {"role": 30}, headers=HTMX)
    assert f"{project_member.email} is now Project Administrator." in response.content.decode()
    pm.refresh_from_db()
    assert pm.role == ProjectRole.ADMIN


def test_a_project_admin_who_removes_themselves_goes_back_to_the_list(org, project, project_admin, login_as):
    client = login_as("project_admin")
    pm = ProjectMembership.objects.get(project=project, user=client.user)
    response = client.post(url("member_remove", org, project, member_id=pm.pk), headers=HTMX)
    assert response["HX-Redirect"] == url("list", org)


# --- settings -----------------------------------------------------------------------------------------


LIMITS = {
    "monthly_budget": "250.5",
    "daily_budget": "",
    "tpm_limit": "150000",
    "monthly_notify_percents": "80, 50,100",
    "daily_notify_percents": "",
    "notify_org_admins": "on",
}


def test_project_admin_saves_limits(org, project, login_as):
    client = login_as("project_admin")
    response = client.post(url("settings_limits", org, project), LIMITS, headers=HTMX)
    body = response.content.decode()
    assert "Budget and rate limit settings saved." in body
    assert 'value="50, 80, 100"' in body
    project.refresh_from_db()
    assert str(project.monthly_budget) == "250.50"
    assert (project.daily_budget, project.tpm_limit, project.notify_org_admins) == (None, 150000, True)
    event = AuditEvent.objects.get(action="project.limits_update")
    assert (event.before["tpm_limit"], event.after["tpm_limit"]) == (None, 150000)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("monthly_budget", "-1", "greater than or equal to 0"),
        ("daily_budget", "ten", "Enter a number."),
        ("daily_budget", "1.005", "no more than 2 decimal places"),
        ("tpm_limit", "0", "greater than or equal to 1"),
        ("tpm_limit", "1.5", "Enter a whole number."),
        ("rpm_limit", "0", "greater than or equal to 1"),
        ("rpm_limit", "many", "Enter a whole number."),
        ("monthly_notify_percents", "0", "0 % is not between 1 and 100."),
        ("daily_notify_percents", "50, 101", "101 % is not between 1 and 100."),
        ("daily_notify_percents", "50, lots", "“lots” is not a whole percentage."),
        ("monthly_notify_percents", ",".join(str(i) for i in range(1, 12)), "at most 10"),
    ],
)
def test_bad_limits_get_field_errors_and_change_nothing(org, project, login_as, field, value, message):
    response = login_as("project_admin").post(url("settings_limits", org, project), {**LIMITS, field: value})
    assert response.status_code == 200
    assert message in response.content.decode()
    project.refresh_from_db()
    assert (project.monthly_budget, project.tpm_limit, project.monthly_notify_percents) == (None, None, [])
    assert project.rpm_limit is None
    assert not AuditEvent.objects.filter(action="project.limits_update").exists()


def test_project_admin_sets_an_rpm_limit_shown_capped_above_the_organizations(org, project, login_as):
    client = login_as("project_admin")
    response = client.post(url("settings_limits", org, project), {**LIMITS, "rpm_limit": "60"}, headers=HTMX)
    assert "Budget and rate limit settings saved." in response.content.decode()
    project.refresh_from_db()
    assert project.rpm_limit == 60  # above the never-topped-up org's Tier0 3 RPM
    event = AuditEvent.objects.get(action="project.limits_update")
    assert (event.before["rpm_limit"], event.after["rpm_limit"]) == (None, 60)
    page = client.get(url("settings", org, project)).content.decode()
    assert "capped at your organization's 3 RPM" in page
    overview = login_as("project_member").get(url("overview", org, project)).content.decode()
    assert "60 requests per minute" in overview
    assert "Capped at your organization's 3 RPM" in overview


def test_settings_state_the_tpm_cap(org, project, project_admin, login_as):
    client = login_as("project_member")
    settings_url = url("settings", org, project)
    assert "capped at your organization" not in client.get(settings_url).content.decode()
    project_limits_update(
        project=project, actor=project_admin, monthly_budget=None, daily_budget=None, tpm_limit=9_000_000,
        monthly_notify_percents=[], daily_notify_percents=[], notify_org_admins=False,
    )
    page = client.get(settings_url).content.decode()
    assert "capped at your organization's 500,000 TPM" in page
    assert "calendar month in UTC" in page
    assert "Only the project's administrators can change these settings." in page


def test_org_admin_renames_archives_and_restores(org, project, project_member, make_key, login_as):
    created = make_key(project, project_member)
    client = login_as("org_admin")
    client.post(url("settings_general", org, project), {"name": "Chatbot v2", "description": "New"})
    project.refresh_from_db()
    assert project.name == "Chatbot v2"

    response = client.post(url("archive", org, project))
    assert response["Location"] == url("list", org)
    assert api_key_authenticate(created.raw_key).error == "project_archived"
    listing = client.get(url("list", org)).content.decode()
    assert "Project “Chatbot v2” archived. Its API keys stopped working." in listing
    assert url("overview", org, project) not in listing
    page = client.get(url("keys", org, project)).content.decode()
    assert "This project was archived" in page
    assert "Create new secret key" not in page

    client.post(url("restore", org, project))
    assert (api_key_authenticate(created.raw_key).error is None)


def test_restore_at_the_limit_is_refused_with_a_contact_sales_link(org, project, login_as):
    client = login_as("org_admin")
    client.post(url("archive", org, project))
    ProjectFactory(organization=org)
    org.projects_limit_override = 1
    org.save()
    response = client.post(url("restore", org, project), follow=True)
    body = response.content.decode()
    assert "reached its limit of 1 projects" in body
    assert reverse("orgs:contact_sales", args=[org.public_id]) + "?need=projects" in body
    project.refresh_from_db()
    assert project.is_archived


def test_overview_shows_budgets_and_counts(org, project, project_member, make_key, login_as):
    make_key(project, project_member)
    page = login_as("project_member").get(url("overview", org, project)).content.decode()
    assert project.public_id in page
    assert "Working API keys" in page
    assert "General Project Member" in page


def test_general_org_members_in_no_project_cannot_open_any_tab(org, project, org_admin, login_as):
    client = login_as("org_member")
    api_key_create(project=project, actor=org_admin, name="x")
    for name in ("overview", "keys", "members", "settings"):
        assert client.get(url(name, org, project)).status_code == 404


def test_key_list_pages_link_to_the_list_itself(org, project, project_member, make_key, login_as, monkeypatch):
    monkeypatch.setattr("projects.views.KEYS_PER_PAGE", 2)
    for name in ("one", "two", "three"):
        make_key(project, project_member, name)
    client = login_as("project_member")
    body = client.post(url("key_create", org, project), {"name": "four"}).content.decode()  # rendered at keys/new/
    assert f'href="{url("keys", org, project)}?page=2"' in body
    second = client.get(url("keys", org, project) + "?page=2", headers=HTMX).content.decode()
    assert "two" in second and "one" in second and "four" not in second
