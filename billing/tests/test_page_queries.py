"""The pages that show consumption and money run the same number of SQL queries whatever the
history: more projects, keys, models, days of usage, ledger rows and raw events change nothing."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.api import usage_report
from billing.models import (
    LedgerKind,
    UsageDailyRollup,
    UsageKeyDailyRollup,
    UsageModelDailyRollup,
    UsageProjectDailyRollup,
    UsageRollup,
)
from billing.services.ledger import ledger_post
from billing.services.rollups import usage_aggregate
from billing.tests.factories import PriceFactory, ProjectFactory, fund, make_api_key, usage_event
from billing.timeutils import today_utc
from orgs.models import Organization, Role
from orgs.tests.factories import MembershipFactory
from projects.models import Project

pytestmark = pytest.mark.django_db


def grow(org: Organization, project: Project, *, projects: int, keys: int, models: int, days: int, topups: int,
         tag: str) -> None:
    """History for `org`: rollups for every key x model x day, ledger rows, raw events."""
    PriceFactory(model=f"{tag}-m0")
    targets = [project, *(ProjectFactory(organization=org, name=f"{tag} project {n}") for n in range(projects))]
    today = today_utc()
    hourly, daily, by_key, by_project = [], [], [], []
    sums = {"requests": 2, "input_tokens": 100, "output_tokens": 50, "cost": Decimal("0.10")}
    for target in targets:
        for k in range(keys):
            _raw, key = make_api_key(project=target, name=f"{tag} key {k}")
            ids = {"organization_id": org.pk, "project_id": target.pk}
            for n in range(days):
                day = today - timedelta(days=n)
                hour = datetime.combine(day, time(12), tzinfo=UTC)
                hourly += [UsageRollup(**ids, api_key=key, model=f"{tag}-m{m}", hour=hour, **sums)
                           for m in range(models)]
                by_key.append(UsageKeyDailyRollup(**ids, api_key=key, day=day, **{**sums, "requests": 2 * models}))
            usage_report([usage_event(f"{tag}-{target.pk}-{k}-{n}", key, f"{tag}-m0") for n in range(5)])
        daily += [UsageDailyRollup(organization_id=org.pk, project_id=target.pk, model=f"{tag}-m{m}",
                                   day=today - timedelta(days=n), **{**sums, "requests": 2 * keys})
                  for n in range(days) for m in range(models)]
        by_project += [UsageProjectDailyRollup(organization_id=org.pk, project_id=target.pk,
                                               day=today - timedelta(days=n), **{**sums, "requests": 2 * keys * models})
                       for n in range(days)]
    by_model = [UsageModelDailyRollup(organization_id=org.pk, model=f"{tag}-m{m}", day=today - timedelta(days=n),
                                      **{**sums, "requests": 2 * keys * len(targets)})
                for n in range(days) for m in range(models)]
    for model_class, rows in ((UsageRollup, hourly), (UsageDailyRollup, daily), (UsageKeyDailyRollup, by_key),
                              (UsageProjectDailyRollup, by_project), (UsageModelDailyRollup, by_model)):
        # A project's day may already hold what an earlier grow's real events folded into it.
        model_class.objects.bulk_create(rows, ignore_conflicts=True)
    usage_aggregate()
    for n in range(topups):
        ledger_post(organization=org, kind=LedgerKind.TOPUP, amount=Decimal("5"), reference=f"{tag}-topup-{n}",
                    actor=None)


def pages(org: Organization, project: Project) -> dict[str, tuple[str, dict[str, str]]]:
    org_id, project_id = org.public_id, project.public_id
    htmx = {"HTTP_HX_REQUEST": "true"}
    return {
        "org overview": (reverse("orgs:overview", args=[org_id]), {}),
        "org overview's usage panel": (reverse("billing:org_usage", args=[org_id]) + "?embed=overview", htmx),
        "org usage, 90 days": (reverse("billing:org_usage", args=[org_id]) + "?days=90", {}),
        "project overview": (reverse("projects:overview", args=[org_id, project_id]), {}),
        "project overview's usage panel":
            (reverse("billing:project_usage", args=[org_id, project_id]) + "?embed=overview", htmx),
        "project usage, 90 days": (reverse("billing:project_usage", args=[org_id, project_id]) + "?days=90", {}),
        "billing and ledger": (reverse("billing:overview", args=[org_id]), {}),
        "ledger page 2 (htmx)": (reverse("billing:overview", args=[org_id]) + "?page=2", htmx),
    }


def count_queries(client: Client, url: str, headers: dict[str, str]) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, **headers)  # type: ignore[arg-type]
    assert response.status_code == 200, (url, response.status_code)
    return len(queries)


@pytest.mark.parametrize("name", list(pages(Organization(public_id="x"), Project(public_id="y"))))
def test_a_page_runs_as_many_queries_for_a_long_history_as_for_a_short_one(name, org, django_assert_max_num_queries):
    admin = MembershipFactory(organization=org, role=Role.ADMIN).user
    client = Client()
    client.force_login(admin)
    project = ProjectFactory(organization=org, name="Main")
    fund(org, "1000")
    grow(org, project, projects=0, keys=1, models=1, days=2, topups=30, tag="small")
    url, headers = pages(org, project)[name]
    small = count_queries(client, url, headers)

    grow(org, project, projects=4, keys=3, models=3, days=90, topups=60, tag="large")
    for _ in range(5):
        MembershipFactory(organization=org, role=Role.MEMBER)

    with django_assert_max_num_queries(small):
        response = client.get(url, **headers)  # type: ignore[arg-type]
    assert response.status_code == 200
