"""Auto-recharge against localstripe: the saved card, one charge per crossing under concurrency,
declines turning it off, the daily cap, removing the card."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from billing.models import CardPayment, LedgerEntry, LedgerKind, PaymentProfile, PaymentStatus
from billing.services.auto_recharge import auto_recharge_card_save, auto_recharge_check, auto_recharge_update
from billing.services.payments import card_setup_start
from billing.tests.factories import fund
from billing.tests.test_payments import CARD_DECLINED_ON_CHARGE, CARD_OK, balance
from console.models import OutboxEmail, User
from orgs.models import AuditEvent, Organization
from orgs.tests.factories import MembershipFactory
from tests.stripe import FakeStripe, signed_post


def save_card(org: Organization, actor: User, fake: FakeStripe, card: str = CARD_OK) -> PaymentProfile:
    setup_id, secret = card_setup_start(organization=org, actor=actor, off_session=True)
    assert fake.confirm_setup(setup_id, secret, card=card)["status"] == "succeeded"
    return auto_recharge_card_save(organization=org, actor=actor, setup_intent_id=setup_id)


def arm(org: Organization, actor: User, fake: FakeStripe, *, card: str = CARD_OK, balance_now: str = "5",
        threshold: str = "10", amount: str = "25") -> None:
    save_card(org, actor, fake, card)
    fund(org, balance_now)
    auto_recharge_update(organization=org, actor=actor, enabled=True, threshold=Decimal(threshold),
                         amount=Decimal(amount))


def credit(fake: FakeStripe, payment: CardPayment) -> None:
    event = fake.event_for("payment_intent.succeeded", payment.payment_intent_id)
    assert signed_post(Client(), event).json()["outcome"] == "credited"


@pytest.mark.django_db
def test_saving_a_card_through_the_page(org, client_as, reauthenticate, stripe_fake):
    client = reauthenticate(client_as("admin"))
    page = client.get(reverse("billing:auto_recharge", kwargs={"org_id": org.public_id}), {"add_card": "1"})
    assert page.status_code == 200 and 'id="card-form"' in page.content.decode()
    setup = stripe_fake.confirm_setup(page.context["setup_intent_id"], page.context["client_secret"])
    assert setup["status"] == "succeeded"
    answer = client.post(reverse("billing:auto_recharge_card_confirm", kwargs={"org_id": org.public_id}),
                         {"setup_intent": page.context["setup_intent_id"]}).json()
    assert answer["redirect"] == reverse("billing:auto_recharge", kwargs={"org_id": org.public_id})
    shown = client.get(answer["redirect"]).content.decode()
    assert "Visa •••• 4242" in shown and "expires 12/2030" in shown
    saved = client.post(reverse("billing:auto_recharge", kwargs={"org_id": org.public_id}),
                        {"enabled": "on", "threshold": "10.00", "amount": "25.00"})
    assert saved.status_code == 302
    profile = PaymentProfile.objects.get(organization=org)
    assert profile.auto_recharge_enabled and profile.auto_recharge_threshold == Decimal("10")
    assert AuditEvent.objects.filter(organization=org, action="auto_recharge.update").exists()


@pytest.mark.django_db(transaction=True)
def test_saving_a_card_calls_stripe_outside_any_transaction(stripe_fake, monkeypatch):
    from billing.services import payments

    org = MembershipFactory(role=30).organization
    admin = org.memberships.get().user
    setup_id, secret = card_setup_start(organization=org, actor=admin, off_session=True)
    assert stripe_fake.confirm_setup(setup_id, secret)["status"] == "succeeded"
    in_transaction: list[bool] = []

    def client() -> Any:
        in_transaction.append(connection.in_atomic_block)
        return real_client()

    real_client = payments.stripe_client
    monkeypatch.setattr(payments, "stripe_client", client)
    profile = auto_recharge_card_save(organization=org, actor=admin, setup_intent_id=setup_id)
    assert profile.card_last4 == "4242" and in_transaction == [False]


@pytest.mark.django_db
def test_changing_auto_recharge_asks_for_the_password_again(org, client_as, stripe_fake):
    client = client_as("admin")
    for name in ("billing:auto_recharge", "billing:auto_recharge_card_confirm", "billing:auto_recharge_card_remove"):
        response = client.post(reverse(name, kwargs={"org_id": org.public_id}),
                               {"enabled": "on", "threshold": "10", "amount": "25"})
        assert response.status_code == 302 and response["Location"].startswith(reverse("account_reauthenticate"))
    adding = client.get(reverse("billing:auto_recharge", kwargs={"org_id": org.public_id}), {"add_card": "1"})
    assert adding.status_code == 302 and adding["Location"].startswith(reverse("account_reauthenticate"))
    assert not PaymentProfile.objects.filter(organization=org, auto_recharge_enabled=True).exists()


@pytest.mark.django_db
def test_turning_it_on_needs_a_card_and_sane_amounts(org, client_as, reauthenticate, stripe_fake):
    client = reauthenticate(client_as("admin"))
    url = reverse("billing:auto_recharge", kwargs={"org_id": org.public_id})
    page = client.post(url, {"enabled": "on", "threshold": "10", "amount": "25"}).content.decode()
    assert "Save a card first" in page
    page = client.post(url, {"enabled": "", "threshold": "10", "amount": "1"}).content.decode()
    assert "Enter an amount from $5.00 to $5,000.00." in page


@pytest.mark.django_db
@pytest.mark.parametrize(("threshold", "amount", "field"), [
    ("\u0661\u0660", "25", "threshold"),  # Arabic-Indic 10
    ("10", "\uff12\uff15", "amount"),  # fullwidth 25
    ("1_0", "25", "threshold"),
    ("10", "$2,5", "amount"),
])
def test_auto_recharge_amounts_in_other_digits_are_refused(org, client_as, reauthenticate, stripe_fake, threshold,
                                                           amount, field):
    client = reauthenticate(client_as("admin"))
    response = client.post(reverse("billing:auto_recharge", kwargs={"org_id": org.public_id}),
                           {"enabled": "", "threshold": threshold, "amount": amount})
    assert response.status_code == 200
    assert response.context["form"].errors[field] == ["Enter an amount such as 25 or 1,250.50, in digits 0-9."]
    assert not AuditEvent.objects.filter(organization=org, action="auto_recharge.update").exists()
    profile = PaymentProfile.objects.filter(organization=org).first()
    assert profile is None or (profile.auto_recharge_threshold, profile.auto_recharge_amount) == (10, 25)


@pytest.mark.django_db
def test_one_charge_per_crossing_and_the_webhook_credits_it(org, org_admin, stripe_fake):
    arm(org, org_admin, stripe_fake)
    assert auto_recharge_check(organization_id=org.pk) == "charged"
    assert auto_recharge_check(organization_id=org.pk) == ""  # the same crossing: nothing more
    [payment] = CardPayment.objects.filter(organization=org)
    assert payment.kind == "auto" and payment.crossing == 1 and payment.status == PaymentStatus.PROCESSING
    assert balance(org) == Decimal("5")  # credited by the webhook only
    credit(stripe_fake, payment)
    assert balance(org) == Decimal("30")
    assert auto_recharge_check(organization_id=org.pk) == "rearmed"
    assert len(stripe_fake.payment_intents()) == 1


@pytest.mark.django_db(transaction=True)
def test_50_concurrent_checks_make_exactly_one_payment_intent(stripe_fake):
    org = MembershipFactory(role=30).organization
    admin = org.memberships.get().user
    save_card(org, admin, stripe_fake)
    fund(org, "5")
    # Turned on behind the service's back: saving the settings would itself charge (on commit) and
    # win the crossing before the race starts.
    PaymentProfile.objects.filter(organization=org).update(
        auto_recharge_enabled=True, auto_recharge_threshold=Decimal("10"), auto_recharge_amount=Decimal("25")
    )
    # 50 charges at once: 50 threads, each with its own connection (closed when it is done), all
    # released together once every one is waiting (PostgreSQL's max_connections is 100).
    start = threading.Barrier(50, timeout=30)

    def attempt(_: int) -> str:
        try:
            start.wait()
            return auto_recharge_check(organization_id=org.pk)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=50) as pool:
        futures = [pool.submit(attempt, i) for i in range(50)]
        outcomes = [f.result() for f in futures]
    assert outcomes.count("charged") == 1 and set(outcomes) <= {"charged", ""}
    assert len(stripe_fake.payment_intents()) == 1
    [payment] = CardPayment.objects.filter(organization=org)
    credit(stripe_fake, payment)
    assert balance(org) == Decimal("30")


@pytest.mark.django_db(transaction=True)
def test_saving_settings_below_the_threshold_charges_at_once_after_commit(stripe_fake):
    org = MembershipFactory(role=30).organization
    arm(org, org.memberships.get().user, stripe_fake)
    assert CardPayment.objects.get(organization=org).crossing == 1
    assert auto_recharge_check(organization_id=org.pk) == ""
    assert len(stripe_fake.payment_intents()) == 1


@pytest.mark.django_db
def test_three_declines_turn_it_off_and_email_the_admins(org, org_admin, client_as, reauthenticate, stripe_fake):
    arm(org, org_admin, stripe_fake, card=CARD_DECLINED_ON_CHARGE)
    assert [auto_recharge_check(organization_id=org.pk) for _ in range(3)] == ["declined"] * 3
    profile = PaymentProfile.objects.get(organization=org)
    assert not profile.auto_recharge_enabled and profile.consecutive_failures == 3
    assert auto_recharge_check(organization_id=org.pk) == ""
    assert len(stripe_fake.payment_intents()) == 3
    emails = list(OutboxEmail.objects.filter(template="auto_recharge_failed").order_by("id"))
    assert len(emails) == 3 and emails[0].to == [org_admin.email]
    assert [e.context["turned_off"] for e in emails] == [False, False, True]
    assert balance(org) == Decimal("5")
    page = client_as("admin").get(reverse("billing:auto_recharge", kwargs={"org_id": org.public_id}))
    assert "Auto-recharge was turned off after 3 declined charges in a row" in page.content.decode()


@pytest.mark.django_db
def test_a_success_resets_the_decline_count(org, org_admin, stripe_fake):
    arm(org, org_admin, stripe_fake, card=CARD_DECLINED_ON_CHARGE)
    assert auto_recharge_check(organization_id=org.pk) == "declined"
    save_card(org, org_admin, stripe_fake, CARD_OK)
    assert auto_recharge_check(organization_id=org.pk) == "charged"
    credit(stripe_fake, CardPayment.objects.get(status=PaymentStatus.PROCESSING))
    assert PaymentProfile.objects.get(organization=org).consecutive_failures == 0


@pytest.mark.django_db
def test_the_daily_cap_stops_automatic_charges(org, org_admin, stripe_fake, settings):
    settings.CONSOLE_AUTO_RECHARGE_DAILY_CAP = Decimal("40")
    arm(org, org_admin, stripe_fake)
    assert auto_recharge_check(organization_id=org.pk) == "charged"
    credit(stripe_fake, CardPayment.objects.get())
    assert auto_recharge_check(organization_id=org.pk) == "rearmed"
    from billing.services.ledger import ledger_post

    ledger_post(organization=org, kind=LedgerKind.ADJUSTMENT, amount=Decimal("-28"), reference="spent", actor=None,
                memo="test spend")
    assert auto_recharge_check(organization_id=org.pk) == "capped"  # 25 + 25 > 40 today
    assert CardPayment.objects.count() == 1


@pytest.mark.django_db
def test_removing_the_card_turns_auto_recharge_off(org, client_as, reauthenticate, stripe_fake):
    client = reauthenticate(client_as("admin"))
    admin: Any = client.user  # type: ignore[attr-defined]
    arm(org, admin, stripe_fake)
    response = client.post(reverse("billing:auto_recharge_card_remove", kwargs={"org_id": org.public_id}))
    assert response.status_code == 302
    profile = PaymentProfile.objects.get(organization=org)
    assert not profile.auto_recharge_enabled and not profile.has_card
    assert "No card saved." in client.get(response["Location"]).content.decode()
    assert auto_recharge_check(organization_id=org.pk) == ""
    assert not LedgerEntry.objects.filter(reference__startswith="stripe:").exists()


@pytest.mark.django_db
def test_the_sweep_resubmits_a_lost_automatic_charge_and_gives_up_an_abandoned_top_up(org, org_admin, stripe_fake):
    from datetime import timedelta

    from django.utils import timezone

    from billing.models import PaymentStatus, RechargeState
    from billing.services.auto_recharge import auto_recharges_check

    save_card(org, org_admin, stripe_fake)
    fund(org, "5")
    PaymentProfile.objects.filter(organization=org).update(
        auto_recharge_enabled=True, auto_recharge_threshold=Decimal("10"), state=RechargeState.FIRED, crossings=1,
    )
    old = timezone.now() - timedelta(minutes=20)
    lost = CardPayment.objects.create(organization=org, kind="auto", amount=Decimal("25"), currency="USD",
                                      crossing=1, created_at=old)
    abandoned = CardPayment.objects.create(organization=org, kind="manual", amount=Decimal("10"), currency="USD",
                                           created_at=old, created_by=org_admin)
    auto_recharges_check()
    lost.refresh_from_db()
    abandoned.refresh_from_db()
    assert lost.status == PaymentStatus.PROCESSING and lost.payment_intent_id.startswith("pi_")
    assert abandoned.status == PaymentStatus.FAILED
    assert len(stripe_fake.payment_intents()) == 1
