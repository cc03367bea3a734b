"""Refunds from the admin (localstripe refunds; `charge.refunded` is signed by the library's helper,
since localstripe sends no webhook for refunds) and the runway forecast."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from billing.models import CardPayment, LedgerEntry, LedgerKind
from billing.selectors.runway import runway_forecast
from billing.services.alerts import balance_alert_update
from billing.services.ledger import ledger_post
from billing.tests.factories import ProjectFactory, fund, make_api_key, rollup
from billing.tests.test_payments import balance, deliver_succeeded, pay
from console.models import OutboxEmail
from console.tests.factories import UserFactory
from orgs.models import AuditEvent
from tests.stripe import SECRET_KEY, FakeStripe, make_event, signed_post

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/billing/cardpayment/"


@pytest.fixture
def staff_client() -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def paid(org: Any, client_as: Any, reauthenticate: Any, stripe_fake: FakeStripe) -> CardPayment:
    client = reauthenticate(client_as("admin"))
    pay(client, org, stripe_fake, amount="10.00")
    payment = CardPayment.objects.get(organization=org)
    deliver_succeeded(client, stripe_fake, payment)
    payment.refresh_from_db()
    assert payment.charge_id.startswith("ch_")
    return payment


def refund(staff_client: Client, payment: CardPayment, amount: str) -> str:
    response = staff_client.post(CHANGELIST, {"action": "refund_payment", "_selected_action": [payment.pk],
                                              "apply": "1", "amount": amount}, follow=True)
    return response.content.decode()


def charge_refunded_event(fake: FakeStripe, charge_id: str) -> dict[str, Any]:
    charge = requests.get(f"{fake.base}/v1/charges/{charge_id}", timeout=5,
                          headers={"Authorization": f"Bearer {SECRET_KEY}"}).json()
    return make_event("charge.refunded", charge, event_id=f"evt_refund_{charge['amount_refunded']}")


def test_a_partial_refund_is_posted_when_stripe_confirms_it(org, paid, staff_client, stripe_fake):
    page = refund(staff_client, paid, "4.00")
    assert "requested at Stripe" in page
    assert balance(org) == Decimal("10")  # nothing moves before charge.refunded
    event = charge_refunded_event(stripe_fake, paid.charge_id)
    assert event["data"]["object"]["amount_refunded"] == 400  # localstripe recorded the refund
    assert signed_post(Client(), event).json()["outcome"] == "refunded"
    assert signed_post(Client(), event).json()["outcome"] == "duplicate"
    assert balance(org) == Decimal("6")
    row = LedgerEntry.objects.get(organization=org, kind=LedgerKind.REFUND)
    assert row.amount == Decimal("-4") and "Visa •••• 4242" in row.memo
    assert AuditEvent.objects.filter(organization=org, action="card_payment.refund").exists()


def test_a_refund_lowers_the_rate_tier_on_the_next_call(org, paid, staff_client, stripe_fake, gateway):
    raw, _key = make_api_key(project=ProjectFactory(organization=org))
    assert gateway.authorize(raw)["X-RateLimit-Limit-Tokens"] == "2000000"  # $10 top-up: Tier1
    refund(staff_client, paid, "4.00")
    assert signed_post(Client(), charge_refunded_event(stripe_fake, paid.charge_id)).json()["outcome"] == "refunded"
    org.refresh_from_db()
    assert org.cumulative_topups == Decimal("6")
    answer = gateway.authorize(raw)
    # Back to Tier0: its limits, and its one concurrent call is the first call's (still open).
    assert answer.status_code == 429 and answer.json()["error"]["limit"] == "concurrency"
    assert answer["X-RateLimit-Limit-Tokens"] == "500000"


def test_the_rest_refunded_later_and_an_older_event_after_it_change_nothing_twice(org, paid, staff_client,
                                                                                   stripe_fake):
    refund(staff_client, paid, "4.00")
    first = charge_refunded_event(stripe_fake, paid.charge_id)
    refund(staff_client, paid, "6.00")
    full = charge_refunded_event(stripe_fake, paid.charge_id)
    assert signed_post(Client(), full).json()["outcome"] == "refunded"
    assert signed_post(Client(), first).json()["outcome"] == "duplicate"  # out of order: harmless
    assert balance(org) == Decimal("0")
    assert "left to refund" in refund(staff_client, paid, "1.00")


def test_a_refund_cannot_exceed_the_balance_or_the_payment(org, paid, staff_client, stripe_fake):
    assert "At most $10.00 of this payment is left to refund." in refund(staff_client, paid, "11.00")
    ledger_post(organization=org, kind=LedgerKind.ADJUSTMENT, amount=Decimal("-7"), reference="spent", actor=None,
                memo="spent")
    assert "A refund cannot exceed the balance ($3.00)." in refund(staff_client, paid, "5.00")
    assert not stripe_fake.client().v1.refunds.list().data


def test_refunds_pending_at_stripe_count_against_the_balance(org, client_as, reauthenticate, staff_client,
                                                             stripe_fake):
    client = reauthenticate(client_as("admin"))
    for _ in range(2):
        pay(client, org, stripe_fake, amount="10.00")
    first, second = CardPayment.objects.filter(organization=org).order_by("id")
    for payment in (first, second):
        deliver_succeeded(client, stripe_fake, payment)
    ledger_post(organization=org, kind=LedgerKind.ADJUSTMENT, amount=Decimal("-10"), reference="spent", actor=None,
                memo="spent")
    assert balance(org) == Decimal("10")
    assert "requested at Stripe" in refund(staff_client, first, "10.00")
    page = refund(staff_client, second, "10.00")
    assert ("A refund cannot exceed the balance ($10.00) less the refunds Stripe has not confirmed yet ($10.00): "
            "at most $0.00.") in page
    assert len(stripe_fake.client().v1.refunds.list().data) == 1
    second.refresh_from_db()
    assert second.refund_requested == 0 and second.refundable == Decimal("10")


def test_a_refund_stripe_does_not_take_is_not_kept_as_pending(org, paid, staff_client, stripe_fake, settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens there
    assert "Stripe refused the refund" in refund(staff_client, paid, "4.00")
    paid.refresh_from_db()
    assert paid.refund_requested == 0 and paid.refundable == Decimal("10")
    settings.STRIPE_API_BASE = stripe_fake.base
    assert "requested at Stripe" in refund(staff_client, paid, "10.00")


@pytest.mark.parametrize("amount", ["\uff15", "\u0665", "1_0", "5.001", "0"])
def test_a_refund_amount_in_other_digits_is_refused_in_the_form(org, paid, staff_client, stripe_fake, amount):
    page = refund(staff_client, paid, amount)
    assert "Enter an amount" in page and "requested at Stripe" not in page
    assert not stripe_fake.client().v1.refunds.list().data
    paid.refresh_from_db()
    assert paid.refund_requested == 0


def test_a_refund_event_before_the_payment_event_credits_then_refunds(org, client_as, reauthenticate, staff_client,
                                                                       stripe_fake):
    client = reauthenticate(client_as("admin"))
    pay(client, org, stripe_fake, amount="10.00")
    payment = CardPayment.objects.get(organization=org)
    intent = stripe_fake.client().v1.payment_intents.retrieve(payment.payment_intent_id)
    charge_id = intent.latest_charge if isinstance(intent.latest_charge, str) else intent.latest_charge.id
    stripe_fake.client().v1.refunds.create(params={"payment_intent": payment.payment_intent_id, "amount": 300})
    assert signed_post(Client(), charge_refunded_event(stripe_fake, charge_id)).json()["outcome"] == "refunded"
    assert deliver_succeeded(client, stripe_fake, payment).json()["outcome"] == "duplicate"
    assert balance(org) == Decimal("7")


# --- runway ---------------------------------------------------------------------------------------


def spend(org: Any, per_day: str, days: int, *, days_ago: int = 0) -> None:
    _raw, key = make_api_key(project=ProjectFactory(organization=org))
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    for n in range(days_ago, days_ago + days):
        rollup(key, now - timedelta(days=n), model="m", cost=per_day)


def test_runway_from_the_last_7_days_of_rollups(org, client_as):
    fund(org, "20")
    spend(org, "2", days=7)
    spend(org, "100", days=1, days_ago=7)  # outside the window: today and the 6 days before
    runway = runway_forecast(organization_id=org.pk)
    assert runway.text == "At the last 7 days' average spend ($2.00/day), your balance lasts about 10 days."
    client = client_as("admin")
    billing = client.get(reverse("billing:overview", kwargs={"org_id": org.public_id})).content.decode()
    assert "your balance lasts about 10 days" in billing
    panel = client.get(reverse("billing:org_usage", kwargs={"org_id": org.public_id}) + "?embed=overview",
                       HTTP_HX_REQUEST="true").content.decode()
    assert "your balance lasts about 10 days" in panel


def test_runway_without_spend(org):
    fund(org, "20")
    assert runway_forecast(organization_id=org.pk).text == "No spend in the last 7 days."


def test_the_balance_alert_email_carries_the_runway(org, org_admin):
    fund(org, "3")
    spend(org, "1", days=7)
    balance_alert_update(organization=org, actor=org_admin, enabled=True, threshold=Decimal("5"),
                         extra_recipients=[])
    from billing.services.alerts import balance_alert_check

    assert balance_alert_check(organization_id=org.pk) == "fired"
    email = OutboxEmail.objects.get(template="balance_alert")
    assert email.context["runway"] == "At the last 7 days' average spend ($1.00/day), your balance lasts about 3 days."
