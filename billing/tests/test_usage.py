"""Consumption charts: the daily series and breakdowns read from rollups, and who sees what."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from billing.api import usage_report
from billing.selectors import usage as usage_selectors
from billing.selectors.usage import organization_usage, project_usage
from billing.services.rollups import usage_aggregate
from billing.tests.factories import PriceFactory, ProjectFactory, make_api_key, rollup, usage_event
from console.models import User
from orgs.models import Organization, Role
from orgs.tests.factories import MembershipFactory
from projects.models import Project, ProjectRole
from projects.tests.factories import ProjectMembershipFactory

pytestmark = pytest.mark.django_db

TODAY = date(2026, 11, 20)


@pytest.fixture(autouse=True)
def fixed_today(monkeypatch: pytest.MonkeyPatch) -> date:
    """The pages' "last N days" end on TODAY (UTC), whatever the clock says."""
    monkeypatch.setattr(usage_selectors, "today_utc", lambda now=None: TODAY)
    return TODAY


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def member_of(org: Organization, project: Project, role: int | None) -> User:
    """An org General Member, in the project with `role` (None: not in the project)."""
    user = MembershipFactory(organization=org, role=Role.MEMBER).user
    if role is not None:
        ProjectMembershipFactory(project=project, user=user, role=role)
    return user


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def org_usage_url(org: Organization, query: str = "") -> str:
    return reverse("billing:org_usage", args=[org.public_id]) + query


def project_usage_url(project: Project, query: str = "") -> str:
    return reverse("billing:project_usage", args=[project.organization.public_id, project.public_id]) + query


@pytest.fixture
def project(org: Organization) -> Project:
    return ProjectFactory(organization=org, name="Chatbot")


# --- the daily series --------------------------------------------------------------------------


def test_every_day_is_present_and_a_day_ends_at_utc_midnight(org, project):
    _raw, key = make_api_key(project=project)
    yesterday = TODAY - timedelta(days=1)
    rollup(key, at(yesterday, 23), cost="1.50", requests=3, input_tokens=1000, output_tokens=200)
    rollup(key, at(TODAY, 0), cost="0.25", requests=1, input_tokens=10, output_tokens=5)
    rollup(key, at(TODAY - timedelta(days=30), 23), cost="9.00")  # the day before the 30-day range

    report = organization_usage(organization=org, days=30)

    assert len(report.daily) == 30
    assert (report.first_day, report.last_day) == (TODAY - timedelta(days=29), TODAY)
    assert [d.day for d in report.daily] == [TODAY - timedelta(days=29 - n) for n in range(30)]
    by_day = {d.day: d for d in report.daily}
    assert (by_day[yesterday].cost, by_day[yesterday].requests, by_day[yesterday].tokens) == (Decimal("1.5"), 3, 1200)
    assert (by_day[TODAY].cost, by_day[TODAY].requests, by_day[TODAY].tokens) == (Decimal("0.25"), 1, 15)
    assert all(d.cost == 0 and d.requests == 0 for d in report.daily if d.day not in (yesterday, TODAY))
    assert (report.total.cost, report.total.requests, report.total.tokens) == (Decimal("1.75"), 4, 1215)
    assert report.peak is not None and report.peak.day == yesterday
    assert by_day[yesterday].height == 100 and by_day[TODAY].height == Decimal("16.7")


def test_ingested_and_aggregated_usage_is_what_the_chart_shows(org, project):
    PriceFactory(model="acme-large", input_per_mtok=Decimal("2.50"), output_per_mtok=Decimal("10.00"))
    _raw, key = make_api_key(project=project)
    now = at(TODAY, 15)
    events = [
        usage_event("u1", key, "acme-large", input_tokens=100_000, output_tokens=20_000, occurred_at=at(TODAY, 9)),
        usage_event("u2", key, "acme-large", input_tokens=100_000, output_tokens=20_000, occurred_at=at(TODAY, 10)),
        usage_event("u3", key, "acme-large", input_tokens=1_000_000, output_tokens=0,
                    occurred_at=at(TODAY - timedelta(days=3), 23) + timedelta(minutes=59)),
    ]
    assert usage_report(events, now=now).accepted == 3
    usage_aggregate()

    report = organization_usage(organization=org, days=7)

    by_day = {d.day: d for d in report.daily}
    assert by_day[TODAY].cost == Decimal("0.90") and by_day[TODAY].requests == 2
    assert by_day[TODAY - timedelta(days=3)].cost == Decimal("2.50")
    assert by_day[TODAY - timedelta(days=2)].requests == 0
    assert report.total.cost == Decimal("3.40")


def test_the_breakdowns_add_up_to_the_series_total(org, project):
    other_project = ProjectFactory(organization=org, name="Search")
    _raw, key_a = make_api_key(project=project, name="a")
    _raw, key_b = make_api_key(project=project, name="b")
    _raw, key_c = make_api_key(project=other_project, name="c")
    rollup(key_a, at(TODAY, 1), model="acme-small", cost="1.10", requests=2)
    rollup(key_a, at(TODAY - timedelta(days=2), 5), model="acme-large", cost="2.20", requests=3)
    rollup(key_b, at(TODAY - timedelta(days=6), 5), model="acme-large", cost="0.30", requests=1)
    rollup(key_c, at(TODAY - timedelta(days=1), 5), model="acme-embed", cost="0.004", requests=7)
    other_org_key = make_api_key()[1]
    rollup(other_org_key, at(TODAY, 1), cost="50.00")  # another organization's usage: never counted

    org_report = organization_usage(organization=org, days=7)
    assert org_report.total.cost == Decimal("3.604") and org_report.total.requests == 13
    for rows in (org_report.by_project, org_report.by_model):
        assert sum(r.cost for r in rows) == org_report.total.cost
        assert sum(r.requests for r in rows) == org_report.total.requests
        assert sum(r.tokens for r in rows) == org_report.total.tokens
    assert [(r.label, r.cost) for r in org_report.by_project] == [
        ("Chatbot", Decimal("3.6")), ("Search", Decimal("0.004"))
    ]

    report = project_usage(project=project, viewer_id=key_a.created_by_id, viewer_role=ProjectRole.ADMIN, days=7)
    assert report.total.cost == Decimal("3.60") and report.total.requests == 6
    for rows in (report.by_model, report.by_key):
        assert sum(r.cost for r in rows) == report.total.cost
        assert sum(r.requests for r in rows) == report.total.requests
    assert [(r.label, r.cost, r.share) for r in report.by_model] == [
        ("acme-large", Decimal("2.5"), Decimal("69.4")), ("acme-small", Decimal("1.1"), Decimal("30.6"))
    ]


# --- who sees what -----------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "status"), [("admin", 200), ("member", 403), ("outsider", 404), ("anonymous", 302)])
def test_only_org_admins_get_the_organization_usage(client_as, org, project, role, status):
    _raw, key = make_api_key(project=project)
    rollup(key, at(TODAY), cost="12.34")
    for headers in ({}, {"HX-Request": "true"}):
        response = client_as(role).get(org_usage_url(org, "?embed=overview"), headers=headers)
        assert response.status_code == status
        assert ("$12.34" in response.content.decode()) is (status == 200)


def test_the_org_overview_loads_the_charts_for_admins_only(client_as, org):
    usage_url = org_usage_url(org)
    admin_page = client_as("admin").get(reverse("orgs:overview", args=[org.public_id])).content.decode()
    assert f'hx-get="{usage_url}?embed=overview"' in admin_page and 'hx-trigger="load"' in admin_page
    assert "on their way" not in admin_page and admin_page.count('id="usage-panel"') == 1
    member_page = client_as("member").get(reverse("orgs:overview", args=[org.public_id])).content.decode()
    assert usage_url not in member_page and "hx-trigger" not in member_page
    assert "View project list" in member_page and member_page.count("<html") == 1


@pytest.mark.parametrize(
    ("who", "status"),
    [("outsider", 404), ("org_member", 404), ("project_member", 200), ("project_admin", 200), ("org_admin", 200)],
)
def test_project_usage_is_for_those_who_see_the_project(org, project, who, status):
    _raw, key = make_api_key(project=project)
    rollup(key, at(TODAY), cost="7.77")
    user = {
        "outsider": lambda: MembershipFactory(role=Role.ADMIN).user,
        "org_member": lambda: member_of(org, project, None),
        "project_member": lambda: member_of(org, project, ProjectRole.MEMBER),
        "project_admin": lambda: member_of(org, project, ProjectRole.ADMIN),
        "org_admin": lambda: MembershipFactory(organization=org, role=Role.ADMIN).user,
    }[who]()
    response = logged_in(user).get(project_usage_url(project), headers={"HX-Request": "true"})
    assert response.status_code == status
    assert ("$7.77" in response.content.decode()) is (status == 200)


def test_the_project_overview_loads_the_charts(org, project):
    user = member_of(org, project, ProjectRole.MEMBER)
    page = logged_in(user).get(reverse("projects:overview", args=[org.public_id, project.public_id])).content.decode()
    assert f'hx-get="{project_usage_url(project)}?embed=overview"' in page
    assert "on their way" not in page and page.count('id="usage-panel"') == 1


@pytest.fixture
def two_members_keys(org, project):
    """Ana's key and Bob's key (revoked) in the project, both with usage today."""
    ana = member_of(org, project, ProjectRole.MEMBER)
    bob = member_of(org, project, ProjectRole.MEMBER)
    _raw, ana_key = make_api_key(project=project, created_by=ana, name="ana-laptop")
    _raw, bob_key = make_api_key(project=project, created_by=bob, name="bob-production",
                                 revoked_at=timezone.now())
    rollup(ana_key, at(TODAY), cost="1.00")
    rollup(bob_key, at(TODAY), cost="3.00")
    return ana, bob, ana_key, bob_key


def test_a_project_member_sees_their_own_keys_and_others_masked(two_members_keys, project):
    ana, _bob, ana_key, bob_key = two_members_keys
    page = logged_in(ana).get(project_usage_url(project)).content.decode()
    assert "ana-laptop" in page and ana_key.hint in page
    assert "bob-production" not in page and bob_key.hint not in page and bob_key.public_id not in page
    assert "Another member&#x27;s key" in page
    assert "Revoked" in page  # Bob's key was revoked: its usage still counts
    assert 'id="usage-total-cost">$4.00<' in page


@pytest.mark.parametrize("who", ["project_admin", "org_admin"])
def test_admins_see_every_key(two_members_keys, org, project, who):
    user = (member_of(org, project, ProjectRole.ADMIN) if who == "project_admin"
            else MembershipFactory(organization=org, role=Role.ADMIN).user)
    page = logged_in(user).get(project_usage_url(project)).content.decode()
    assert "ana-laptop" in page and "bob-production" in page
    assert "Another member" not in page
    table = page[page.index('id="usage-by-key"'):]
    assert re.search(r"bob-production.*?Revoked.*?\$3\.00", table, re.S)


# --- the page: range, chart, empty state -------------------------------------------------------


@pytest.mark.parametrize(("query", "days"), [("", 30), ("?days=7", 7), ("?days=30", 30), ("?days=90", 90),
                                             ("?days=365", 30), ("?days=abc", 30), ("?days=", 30)])
def test_the_range_switch(client_as, org, project, query, days):
    _raw, key = make_api_key(project=project)
    rollup(key, at(TODAY - timedelta(days=10)), cost="2.00")
    rollup(key, at(TODAY - timedelta(days=60)), cost="5.00")
    page = client_as("admin").get(org_usage_url(org, query)).content.decode()
    assert f"Last {days} days" in page
    assert re.search(rf'href="{org_usage_url(org)}\?days={days}"[^>]*aria-current="page"', page)
    expected = {7: None, 30: "$2.00", 90: "$7.00"}[days]
    if expected is None:
        assert "No usage in the last 7 days" in page
    else:
        assert f'id="usage-total-cost">{expected}<' in page
        assert page.count("<li class=") == days  # one bar per day


def test_the_chart_labels_its_bars_maximum_and_ends(client_as, org, project):
    _raw, key = make_api_key(project=project)
    rollup(key, at(TODAY - timedelta(days=1), 3), cost="1.234", requests=45, input_tokens=12_000, output_tokens=345)
    rollup(key, at(TODAY, 3), cost="0.50", requests=1, input_tokens=1, output_tokens=0)
    page = client_as("admin").get(org_usage_url(org, "?days=7")).content.decode()
    assert 'title="Nov 19: $1.23 · 45 requests · 12,345 tokens"' in page
    assert 'title="Nov 20: $0.50 · 1 request · 1 token"' in page
    assert 'title="Nov 14: $0.00 · 0 requests · 0 tokens"' in page
    assert "<strong>$1.23</strong> <span class=\"muted\">max, Nov 19</span>" in page
    assert "<span>Nov 14</span>" in page and "<span>Nov 20</span>" in page
    assert 'style="height: 100.0%"' in page and 'style="height: 40.5%"' in page
    assert "Show as table" in page and "Sat, Nov 14, 2026" in page
    assert "Updated every minute" in page and "UTC days" in page
    assert "cdn" not in page.lower() and "<script" not in page.split("</head>")[1]


def test_no_usage_shows_an_empty_state(client_as, org):
    page = client_as("admin").get(org_usage_url(org)).content.decode()
    assert "No usage in the last 30 days" in page
    assert 'class="usage-bars"' not in page


def test_htmx_gets_only_the_panel(client_as, org, project):
    _raw, key = make_api_key(project=project)
    rollup(key, at(TODAY), cost="1.00")
    response = client_as("admin").get(org_usage_url(org, "?days=7&embed=overview"), headers={"HX-Request": "true"})
    body = response.content.decode()
    assert body.lstrip().startswith('<section class="card usage-panel" id="usage-panel"')
    assert "<html" not in body
    assert "Open the usage page" in body
    assert f'hx-get="{org_usage_url(org)}?days=90&amp;embed=overview"' in body
