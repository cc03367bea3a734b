"""Balance alerts and consumption notifications, end to end through a real SMTP server process."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from billing.api import usage_report
from billing.models import AlertState, BalanceAlert, LedgerKind
from billing.services.alerts import balance_alert_check
from billing.services.ledger import ledger_post
from billing.tests.factories import PriceFactory, ProjectFactory, fund, make_api_key, usage_event
from console.models import OutboxEmail
from console.tests.factories import UserFactory
from console.tests.test_outbox import run_in_threads
from orgs.models import Membership, Role
from projects.models import APIKey, ProjectMembership, ProjectRole

CENT_MODEL = "cent-model"  # 1,000 input tokens cost exactly $0.01


def spend(key: APIKey, cents: int, event_id: str, *, when: timezone.datetime | None = None) -> None:
    when = when or timezone.now()
    result = usage_report(
        [usage_event(event_id, key, CENT_MODEL, input_tokens=1000 * cents, output_tokens=0, occurred_at=when)],
        now=when,
    )
    assert result.accepted == 1, result


@pytest.fixture
def cent_price(db: None) -> None:
    PriceFactory(model=CENT_MODEL, input_per_mtok=Decimal("10"), output_per_mtok=Decimal("0"))


@pytest.mark.django_db(transaction=True)
def test_50_concurrent_charges_crossing_the_threshold_send_one_email_then_a_top_up_rearms(smtp, cent_price):
    _raw, key = make_api_key()
    org = key.organization
    BalanceAlert.objects.create(organization=org, extra_recipients=["finance@example.com"])
    fund(org, "5.30")  # threshold $5.00 (the default); 50 calls of $0.01 end at $4.80
    assert smtp.messages() == []

    run_in_threads(50, lambda i: spend(key, 1, f"c-{i}"))

    [alert_email] = smtp.messages()
    assert sorted(alert_email.envelope_to) == sorted([org.registered_email, "finance@example.com"])
    # The balance when the crossing was decided: under $5.00, at least what 50 calls leave.
    balance = alert_email.subject.removeprefix(f"Low balance: {org.name} has $").removesuffix(" left")
    assert Decimal("4.80") <= Decimal(balance) < Decimal("5.00")
    for text in (alert_email.text, alert_email.html):
        assert org.name in text and org.public_id in text
        assert f"${balance}" in text and "$5.00" in text
        assert f"/o/{org.public_id}/billing/" in text
    assert "How to top up" in alert_email.text
    alert = BalanceAlert.objects.get(organization=org)
    assert (alert.state, alert.crossings) == (AlertState.FIRED, 1)

    # More usage while fired: nothing new. A top-up back above the threshold re-arms it.
    spend(key, 5, "more")
    fund(org, "1.00")  # $4.75 + $1.00 = $5.75
    alert.refresh_from_db()
    assert alert.state == AlertState.ARMED
    assert len(smtp.messages()) == 1

    spend(key, 100, "drop-again")  # $4.75: a new crossing, a second email
    messages = smtp.messages()
    assert len(messages) == 2
    assert messages[1].subject == f"Low balance: {org.name} has $4.75 left"
    assert OutboxEmail.objects.filter(template="balance_alert", status="sent").count() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_checks_of_one_crossing_fire_once(smtp, cent_price):
    _raw, key = make_api_key()
    fund(key.organization, "4.00")  # below the threshold from the start: the top-up's check fires
    results: list[str] = []
    run_in_threads(10, lambda i: results.append(balance_alert_check(organization_id=key.organization_id)))
    assert results.count("fired") == 0  # the top-up's own check already fired it
    assert len(smtp.messages()) == 1
    connection.close()


@pytest.mark.django_db
def test_reaching_zero_says_calls_are_denied(smtp, cent_price, django_capture_on_commit_callbacks):
    _raw, key = make_api_key()
    with django_capture_on_commit_callbacks(execute=True):
        fund(key.organization, "0.50")
    [first] = smtp.messages()
    assert "Low balance" in first.subject
    with django_capture_on_commit_callbacks(execute=True):
        fund(key.organization, "10.00")  # re-arms
    with django_capture_on_commit_callbacks(execute=True):
        spend(key, 1050, "all-of-it")
    [_first, exhausted] = smtp.messages()
    assert exhausted.subject == f"Balance exhausted: API calls of {key.organization.name} are being denied"
    assert "API calls of every project are being denied" in exhausted.text


@pytest.mark.django_db
def test_a_disabled_alert_sends_nothing(smtp, cent_price, django_capture_on_commit_callbacks):
    _raw, key = make_api_key()
    BalanceAlert.objects.create(organization=key.organization, enabled=False)
    with django_capture_on_commit_callbacks(execute=True):
        fund(key.organization, "3.00")
    assert smtp.messages() == []


@pytest.mark.django_db
def test_the_beat_command_catches_a_crossing_whose_trigger_was_lost(
    smtp, cent_price, django_capture_on_commit_callbacks
):
    _raw, key = make_api_key()
    fund(key.organization, "20.00")  # no on-commit callbacks run here: triggers are "lost"
    ledger_post(organization=key.organization, kind=LedgerKind.ADJUSTMENT, amount=Decimal("-18"),
                reference="adj-1", memo="correction", actor=None)
    assert smtp.messages() == []

    with django_capture_on_commit_callbacks(execute=True):
        call_command("balance_alerts_check")
    with django_capture_on_commit_callbacks(execute=True):
        call_command("balance_alerts_check")  # a second run finds nothing to do

    [received] = smtp.messages()
    assert "$2.00" in received.text


# --- consumption notifications ---------------------------------------------------------------------


@pytest.mark.django_db
def test_daily_thresholds_50_80_100_send_three_emails_once_each_and_a_new_day_rearms(
    smtp, cent_price, django_capture_on_commit_callbacks
):
    project = ProjectFactory(daily_budget=Decimal("1.00"), daily_notify_percents=[50, 80, 100])
    _raw, key = make_api_key(project=project)
    admin, member = UserFactory(email="padmin@example.com"), UserFactory(email="pmember@example.com")
    ProjectMembership.objects.create(project=project, user=admin, role=ProjectRole.ADMIN)
    ProjectMembership.objects.create(project=project, user=member, role=ProjectRole.MEMBER)
    now = timezone.now().replace(hour=12)
    fund(project.organization, "100")
    for n, cents in enumerate([40, 15, 30, 20, 10, 5]):  # 0.40 0.55 0.85 1.05 1.15 1.20
        with django_capture_on_commit_callbacks(execute=True):
            spend(key, cents, f"d1-{n}", when=now)

    received = smtp.messages()
    assert [m.subject for m in received] == [
        f"{project.name} used 50% of its daily budget",
        f"{project.name} used 80% of its daily budget",
        f"{project.name} reached its daily budget: API calls are denied",
    ]
    assert all(m.envelope_to == ["padmin@example.com"] for m in received)  # project admins, not members
    denied = received[2]
    assert "API calls are now denied until 00:00 UTC or until a project admin raises the budget" in denied.text
    assert f"/projects/{project.public_id}/settings/" in denied.text
    assert "$1.05 of $1.00" in denied.text

    with django_capture_on_commit_callbacks(execute=True):
        spend(key, 60, "d2-0", when=now + timedelta(days=1))
    assert len(smtp.messages()) == 4
    assert smtp.messages()[3].subject == f"{project.name} used 50% of its daily budget"


@pytest.mark.django_db
def test_org_admins_are_told_when_the_project_asks_for_it(smtp, cent_price, django_capture_on_commit_callbacks):
    project = ProjectFactory(monthly_budget=Decimal("2.00"), monthly_notify_percents=[100], notify_org_admins=True)
    _raw, key = make_api_key(project=project)
    org_admin = UserFactory(email="orgadmin@example.com")
    Membership.objects.create(organization=project.organization, user=org_admin, role=Role.ADMIN)
    ProjectMembership.objects.create(project=project, user=UserFactory(email="padmin@example.com"),
                                     role=ProjectRole.ADMIN)
    with django_capture_on_commit_callbacks(execute=True):
        fund(project.organization, "100")
        spend(key, 200, "m-1")
    [received] = smtp.messages()
    assert sorted(received.envelope_to) == ["orgadmin@example.com", "padmin@example.com"]
    assert "until the 1st of next month (UTC)" in received.text


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_crossing_a_threshold_send_it_once(smtp, cent_price):
    project = ProjectFactory(daily_budget=Decimal("0.10"), daily_notify_percents=[100])
    _raw, key = make_api_key(project=project)
    ProjectMembership.objects.create(project=project, user=UserFactory(), role=ProjectRole.ADMIN)
    fund(project.organization, "100")
    run_in_threads(20, lambda i: spend(key, 1, f"p-{i}"))
    [received] = smtp.messages()
    assert "reached its daily budget" in received.subject


@pytest.mark.django_db
def test_the_beat_command_sends_a_consumption_notice_whose_trigger_was_lost(
    smtp, cent_price, django_capture_on_commit_callbacks
):
    watched = ProjectFactory(name="Watched", daily_budget=Decimal("1.00"), daily_notify_percents=[80])
    no_thresholds = ProjectFactory(organization=watched.organization, name="Quiet", daily_budget=Decimal("1.00"))
    stale = ProjectFactory(organization=watched.organization, name="Stale", daily_budget=Decimal("1.00"),
                           daily_notify_percents=[80])
    for project in (watched, no_thresholds, stale):
        ProjectMembership.objects.create(project=project, user=UserFactory(), role=ProjectRole.ADMIN)
    fund(watched.organization, "100")
    # No on-commit callbacks run here: every batch's notification task is "lost".
    spend(make_api_key(project=watched)[1], 90, "w-1")
    spend(make_api_key(project=no_thresholds)[1], 90, "q-1")
    three_hours_ago = timezone.now() - timedelta(hours=3)
    if three_hours_ago.date() == timezone.now().date():  # the stale counter is today's, last moved 3 h ago
        spend(make_api_key(project=stale)[1], 90, "s-1", when=three_hours_ago)
    assert smtp.messages() == []

    with django_capture_on_commit_callbacks(execute=True):
        call_command("consumption_notifications_check")
    with django_capture_on_commit_callbacks(execute=True):
        call_command("consumption_notifications_check")  # a second run sends nothing again

    [received] = smtp.messages()
    assert received.subject == "Watched used 80% of its daily budget"
