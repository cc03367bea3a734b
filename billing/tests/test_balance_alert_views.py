"""Settings → Balance alerts (org admins) and the low-balance / exhausted banners."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from billing.models import AlertState, BalanceAlert, LedgerKind
from billing.services.ledger import ledger_post
from orgs.models import AuditEvent

pytestmark = pytest.mark.django_db


def alerts_url(org) -> str:
    return reverse("billing:balance_alerts", args=[org.public_id])


def topup(org, amount: str, reference: str) -> None:
    ledger_post(organization=org, kind=LedgerKind.TOPUP, amount=Decimal(amount), reference=reference, actor=None)


@pytest.mark.parametrize(
    ("role", "status"), [("admin", 200), ("member", 403), ("outsider", 404), ("anonymous", 302)]
)
@pytest.mark.parametrize("method", ["get", "post"])
def test_only_org_admins_manage_balance_alerts(client_as, org, role, status, method):
    response = getattr(client_as(role), method)(alerts_url(org), {"enabled": "on", "threshold": "9.00"})
    assert response.status_code == (302 if method == "post" and status == 200 else status)
    assert BalanceAlert.objects.filter(organization=org).exists() == (status == 200 and method == "post")


def test_the_page_shows_the_default_threshold_and_who_gets_the_email(client_as, org):
    page = client_as("admin").get(alerts_url(org)).content.decode()
    assert 'value="5.00"' in page
    assert org.registered_email in page
    assert "Save alert settings" in page
    assert 'aria-current="page"><span class="icon" aria-hidden="true">!</span>Balance alerts' in page


def test_saving_settings_is_audited_and_htmx_gets_the_panel(client_as, org):
    client = client_as("admin")
    response = client.post(
        alerts_url(org),
        {"enabled": "on", "threshold": "12.50", "extra_recipients": "a@example.com, b@example.com\nA@example.com"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="alert-panel"')
    assert "Balance alert settings saved." in body
    alert = BalanceAlert.objects.get(organization=org)
    assert (alert.enabled, alert.threshold, alert.extra_recipients) == (True, Decimal("12.50"),
                                                                         ["a@example.com", "b@example.com"])
    event = AuditEvent.objects.get(organization=org, action="balance_alert.update")
    assert event.after["threshold"] == "12.50"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"threshold": "-1"}, "Ensure this value is greater than or equal to 0."),
        ({"threshold": "abc"}, "Enter a number."),
        ({"threshold": "5", "extra_recipients": "not-an-email"}, "“not-an-email” is not a valid email address."),
        ({"threshold": "5", "extra_recipients": ",".join(f"u{i}@example.com" for i in range(6))},
         "Enter at most 5 additional addresses."),
    ],
)
def test_bad_input_is_explained_and_changes_nothing(client_as, org, data, message):
    response = client_as("admin").post(alerts_url(org), {"enabled": "on", **data})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not BalanceAlert.objects.filter(organization=org).exists()


def test_admins_see_the_low_balance_banner_while_the_alert_is_fired(client_as, org, django_capture_on_commit_callbacks):
    admin, member = client_as("admin"), client_as("member")
    overview = reverse("orgs:overview", args=[org.public_id])
    with django_capture_on_commit_callbacks(execute=True):
        topup(org, "3", "p1")
    assert BalanceAlert.objects.get(organization=org).state == AlertState.FIRED
    assert "Low balance." in admin.get(overview).content.decode()
    assert "Low balance." not in member.get(overview).content.decode()  # members do not see money

    with django_capture_on_commit_callbacks(execute=True):
        topup(org, "10", "p2")
    assert "Low balance." not in admin.get(overview).content.decode()


def test_at_zero_the_banner_says_calls_are_denied(client_as, org):
    topup(org, "1", "p1")
    ledger_post(organization=org, kind=LedgerKind.REFUND, amount=Decimal("1"), reference="r1", actor=None)
    page = client_as("admin").get(reverse("orgs:overview", args=[org.public_id])).content.decode()
    assert "Balance exhausted — API calls are being denied." in page


def test_the_banner_costs_one_query(client_as, org, django_assert_num_queries):
    from billing.selectors.pages import balance_banner

    topup(org, "1", "p1")
    with django_assert_num_queries(1):
        assert balance_banner(organization_id=org.pk) == ""


@pytest.mark.django_db
def test_the_service_itself_refuses_a_member_changing_the_alert(org):
    from billing.services.alerts import balance_alert_update
    from console.errors import Forbidden
    from orgs.models import Role
    from orgs.tests.factories import MembershipFactory

    member = MembershipFactory(organization=org, role=Role.MEMBER).user
    with pytest.raises(Forbidden):
        balance_alert_update(organization=org, actor=member, enabled=False, threshold=Decimal("50.00"),
                             extra_recipients=[])
    assert not BalanceAlert.objects.filter(organization=org).exists()
