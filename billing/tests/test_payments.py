"""Card top-ups against localstripe (a real fake-Stripe process): the page's flow through the test
client, Stripe.js's part done the way localstripe's stand-in does it, webhooks signed by the library."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from pypdf import PdfReader

from billing.models import BillingAccount, CardPayment, LedgerEntry, LedgerKind, PaymentStatus
from console.models import OutboxEmail
from orgs.models import AuditEvent, Organization
from tests.stripe import FakeStripe, make_event, signed_post

pytestmark = pytest.mark.django_db

CARD_OK = "4242424242424242"
CARD_DECLINED_ON_CHARGE = "4000000000000341"  # the card saves, every charge is declined
CARD_DECLINED_ON_SAVE = "4000000000000002"


def balance(org: Organization) -> Decimal:
    account = BillingAccount.objects.filter(organization=org).first()
    return account.balance if account else Decimal(0)


@pytest.fixture
def admin_client(client_as: Any, reauthenticate: Any) -> Client:
    client: Client = reauthenticate(client_as("admin"))
    return client


def start_card_step(client: Client, org: Organization, **data: str) -> Any:
    return client.get(reverse("billing:add_funds", kwargs={"org_id": org.public_id}), data)


def pay(client: Client, org: Organization, fake: FakeStripe, *, amount: str = "10.00", card: str = CARD_OK) -> Any:
    """The admin picks an amount, types the card (Stripe.js confirms the SetupIntent), the page posts."""
    step = start_card_step(client, org, preset=amount)
    assert step.status_code == 200 and step.context["step"] == "card", step.content
    setup = fake.confirm_setup(step.context["setup_intent_id"], step.context["client_secret"], card=card)
    assert setup.get("status") == "succeeded", setup
    response = client.post(
        reverse("billing:add_funds_pay", kwargs={"org_id": org.public_id}),
        {"amount": amount, "setup_intent": step.context["setup_intent_id"]},
    )
    assert response.status_code == 200
    return response.json()


def deliver_succeeded(client: Client, fake: FakeStripe, payment: CardPayment) -> Any:
    event = fake.event_for("payment_intent.succeeded", payment.payment_intent_id)
    return signed_post(client, event)


def test_a_card_top_up_is_credited_by_the_webhook_only(org, admin_client, stripe_fake):
    answer = pay(admin_client, org, stripe_fake, amount="10.00")
    payment = CardPayment.objects.get(organization=org)
    assert answer["redirect"].endswith(f"/payments/{payment.pk}/")
    assert payment.status == PaymentStatus.PROCESSING and payment.payment_intent_id.startswith("pi_")
    assert balance(org) == 0  # Stripe says succeeded, but the browser's return credits nothing

    page = admin_client.get(answer["redirect"])
    assert "Processing…" in page.content.decode() and 'hx-trigger="every 1s"' in page.content.decode()

    response = deliver_succeeded(admin_client, stripe_fake, payment)
    assert response.status_code == 200 and response.json()["outcome"] == "credited"
    assert balance(org) == Decimal("10")
    entry = LedgerEntry.objects.get(organization=org, kind=LedgerKind.TOPUP)
    assert entry.reference == f"stripe:{payment.payment_intent_id}" and entry.amount == Decimal("10")
    assert entry.created_by == admin_client.user  # type: ignore[attr-defined]
    assert "Visa •••• 4242" in entry.memo
    paid = AuditEvent.objects.get(organization=org, action="card_payment.succeeded")
    assert paid.actor == admin_client.user  # type: ignore[attr-defined]

    polled = admin_client.get(answer["redirect"], HTTP_HX_REQUEST="true").content.decode()
    assert "Payment received." in polled and "every 1s" not in polled
    org.refresh_from_db()
    assert org.cumulative_topups == Decimal("10")  # the rate tier follows card top-ups too
    billing = admin_client.get(reverse("billing:overview", kwargs={"org_id": org.public_id})).content.decode()
    assert 'id="rate-tier">Tier1<' in billing and "Receipt (PDF)" in billing


def test_receipt_pdf_and_email(org, admin_client, stripe_fake):
    pay(admin_client, org, stripe_fake, amount="25.00")
    payment = CardPayment.objects.get(organization=org)
    deliver_succeeded(admin_client, stripe_fake, payment)
    email = OutboxEmail.objects.get(template="card_receipt")
    assert email.to == [org.registered_email] and email.context["amount"] == "$25.00"
    response = admin_client.get(reverse("billing:receipt", kwargs={"org_id": org.public_id,
                                                                   "intent_id": payment.payment_intent_id}))
    assert response["Content-Type"] == "application/pdf"
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(response.content)).pages)
    assert "$25.00" in text and "4242" in text and org.name in text and org.public_id in text


def test_the_receipt_email_carries_the_pdf(org, admin_client, stripe_fake, smtp, django_capture_on_commit_callbacks):
    pay(admin_client, org, stripe_fake, amount="25.00")
    payment = CardPayment.objects.get(organization=org)
    with django_capture_on_commit_callbacks(execute=True):
        deliver_succeeded(admin_client, stripe_fake, payment)
    [received] = [m for m in smtp.messages() if m.subject.startswith("Receipt")]
    assert received.envelope_to == [org.registered_email]
    [pdf] = received.message.iter_attachments()
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_filename() == f"receipt-{payment.payment_intent_id}.pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.get_content())).pages)
    assert "$25.00" in text and "4242" in text and org.name in text
    receipt_url = reverse("billing:receipt", kwargs={"org_id": org.public_id, "intent_id": payment.payment_intent_id})
    assert receipt_url in received.text and "The receipt is attached (PDF)." in received.text  # the link stays


def test_a_webhook_delivered_twice_credits_once(org, admin_client, stripe_fake):
    pay(admin_client, org, stripe_fake)
    payment = CardPayment.objects.get(organization=org)
    first = deliver_succeeded(admin_client, stripe_fake, payment)
    second = deliver_succeeded(admin_client, stripe_fake, payment)
    assert (first.json()["outcome"], second.json()["outcome"]) == ("credited", "duplicate")
    assert balance(org) == Decimal("10")
    assert LedgerEntry.objects.filter(organization=org, kind=LedgerKind.TOPUP).count() == 1
    assert OutboxEmail.objects.filter(template="card_receipt").count() == 1


def test_the_pay_form_posted_twice_charges_once(org, admin_client, stripe_fake):
    """A replayed or double-submitted post of one confirmed card form (one SetupIntent)."""
    step = start_card_step(admin_client, org, preset="10.00")
    stripe_fake.confirm_setup(step.context["setup_intent_id"], step.context["client_secret"])
    url = reverse("billing:add_funds_pay", kwargs={"org_id": org.public_id})
    data = {"amount": "10.00", "setup_intent": step.context["setup_intent_id"]}
    first = admin_client.post(url, data).json()
    second = admin_client.post(url, data).json()
    [payment] = CardPayment.objects.filter(organization=org)
    assert first == second == {"redirect": first["redirect"], "requires_action": ""}
    assert first["redirect"].endswith(f"/payments/{payment.pk}/")
    assert len(stripe_fake.payment_intents()) == 1
    assert deliver_succeeded(admin_client, stripe_fake, payment).json()["outcome"] == "credited"
    assert admin_client.post(url, data).json() == first  # after the credit too: the same payment
    assert balance(org) == Decimal("10") and len(stripe_fake.payment_intents()) == 1
    assert LedgerEntry.objects.filter(organization=org, kind=LedgerKind.TOPUP).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_posts_of_one_card_form_make_one_payment_intent(stripe_fake):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    from billing.services.payments import card_setup_start, card_topup_pay
    from orgs.tests.factories import MembershipFactory

    org = MembershipFactory(role=30).organization
    admin = org.memberships.get().user
    setup_id, secret = card_setup_start(organization=org, actor=admin, off_session=False)
    assert stripe_fake.confirm_setup(setup_id, secret)["status"] == "succeeded"
    start = threading.Event()

    def post(_: int) -> int:
        start.wait()
        try:
            return card_topup_pay(organization=org, actor=admin, amount=Decimal("10.00"),
                                  setup_intent_id=setup_id).payment.pk
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(post, i) for i in range(6)]
        start.set()
        payment_ids = {f.result() for f in futures}
    assert payment_ids == set(CardPayment.objects.filter(organization=org).values_list("pk", flat=True))
    assert len(payment_ids) == 1 and len(stripe_fake.payment_intents()) == 1


def test_a_webhook_before_the_browser_returns(org, admin_client, stripe_fake):
    """The webhook lands before the browser reaches the status page: it shows the credit at once."""
    answer = pay(admin_client, org, stripe_fake)
    payment = CardPayment.objects.get(organization=org)
    deliver_succeeded(admin_client, stripe_fake, payment)
    page = admin_client.get(answer["redirect"]).content.decode()
    assert "Payment received." in page and "Processing…" not in page


def test_a_webhook_before_our_payment_intent_call_answered(org, org_admin, stripe_fake):
    """Stripe's event can overtake the answer to our own create call: the row is found by the id
    in the metadata, credited once, and the late answer changes nothing."""
    from billing.services.payments import payment_intent_succeeded

    payment = CardPayment.objects.create(organization=org, kind="manual", amount=Decimal("12.00"), currency="USD",
                                         created_by=org_admin)
    intent = stripe_fake.client().v1.payment_intents.create(params={
        "amount": 1200, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True,
        "metadata": {"organization_id": org.public_id, "console_payment_id": str(payment.pk)},
    })
    event = stripe_fake.event_for("payment_intent.succeeded", intent.id)
    assert signed_post(Client(), event).json()["outcome"] == "credited"
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED and payment.payment_intent_id == intent.id
    assert payment_intent_succeeded(intent=event["data"]["object"]) == "duplicate"
    assert balance(org) == Decimal("12")


def test_a_declined_card(org, admin_client, stripe_fake):
    answer = pay(admin_client, org, stripe_fake, card=CARD_DECLINED_ON_CHARGE)
    assert answer["error"] == "Your card was declined."
    payment = CardPayment.objects.get(organization=org)
    assert payment.status == PaymentStatus.FAILED
    page = admin_client.get(answer["redirect"]).content.decode()
    assert "The payment failed." in page and "Your card was declined." in page
    # localstripe reports the failure by webhook too: harmless, nothing credited.
    failed = stripe_fake.events("payment_intent.payment_failed")
    assert failed and signed_post(admin_client, failed[0]).status_code == 200
    assert balance(org) == 0 and not LedgerEntry.objects.filter(organization=org).exists()


def test_a_card_declined_when_saved_is_never_charged(org, admin_client, stripe_fake):
    step = start_card_step(admin_client, org, preset="10.00")
    setup = stripe_fake.confirm_setup(step.context["setup_intent_id"], step.context["client_secret"],
                                      card=CARD_DECLINED_ON_SAVE)
    assert setup["error"]["message"] == "Your card was declined."  # what Stripe.js shows
    response = admin_client.post(reverse("billing:add_funds_pay", kwargs={"org_id": org.public_id}),
                                 {"amount": "10.00", "setup_intent": step.context["setup_intent_id"]})
    assert response.json()["code"] == "card_not_confirmed"
    assert not stripe_fake.payment_intents() and not CardPayment.objects.exists()


def test_a_bad_signature_is_400_and_credits_nothing(org, admin_client, stripe_fake):
    pay(admin_client, org, stripe_fake)
    payment = CardPayment.objects.get(organization=org)
    event = stripe_fake.event_for("payment_intent.succeeded", payment.payment_intent_id)
    forged = signed_post(Client(), event, secret="whsec_wrong")
    assert forged.status_code == 400 and forged.json()["error"]["code"] == "invalid_signature"
    unsigned = Client().post("/stripe/webhook", data="{}", content_type="application/json")
    assert unsigned.status_code == 400
    assert balance(org) == 0
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.PROCESSING


def test_unknown_types_and_unknown_payments_are_200_and_change_nothing(org, stripe_fake):
    ignored = signed_post(Client(), make_event("customer.created", {"id": "cus_x", "object": "customer"}))
    assert ignored.status_code == 200 and ignored.json()["outcome"] == "ignored"
    unknown = signed_post(Client(), make_event("payment_intent.succeeded", {
        "id": "pi_unknown", "object": "payment_intent", "amount": 1000, "currency": "usd",
        "metadata": {"organization_id": "org-nope", "console_payment_id": "999999"},
    }))
    assert unknown.status_code == 200 and unknown.json()["outcome"] == "unknown"
    assert not LedgerEntry.objects.exists()


def test_a_payment_of_another_organization_is_not_credited_here(org, admin_client, stripe_fake):
    pay(admin_client, org, stripe_fake)
    payment = CardPayment.objects.get(organization=org)
    event = stripe_fake.event_for("payment_intent.succeeded", payment.payment_intent_id)
    event["data"]["object"]["metadata"]["organization_id"] = "org-someone-else"
    assert signed_post(Client(), event).json()["outcome"] == "unknown"
    assert balance(org) == 0


@pytest.mark.parametrize(("data", "message"), [
    ({"custom": "1"}, "Enter an amount from $5.00 to $5,000.00."),
    ({"custom": "10.001"}, "at most 2 decimal places"),
    ({"custom": "ten"}, "Enter an amount such as 25"),
    ({"custom": ""}, "Pick an amount or enter one."),
])
def test_bad_amounts_get_a_message_and_create_nothing(org, admin_client, stripe_fake, data, message):
    response = start_card_step(admin_client, org, **data)
    assert response.status_code == 200 and message in response.content.decode()
    assert response.context["step"] == "amount" and not CardPayment.objects.exists()


@pytest.mark.parametrize(("text", "expected"), [
    ("25", "25"), ("25.5", "25.50"), ("25.50", "25.50"), (" 40 ", "40"), ("$10", "10"), ("0.01", "0.01"),
    ("1,000", "1000"), ("$1,250.50", "1250.50"), ("12,345,678", "12345678"), ("007", "7"),
])
def test_a_typed_money_amount_in_ascii_digits_is_read(text, expected):
    from billing.money import money_amount_parse

    assert money_amount_parse(text, minimum=Decimal(0), maximum=None) == Decimal(expected)


@pytest.mark.parametrize(("text", "code"), [
    ("\u0665\u0660", "invalid_amount"),  # Arabic-Indic digits: Decimal() reads 50
    ("\uff15\uff10.\uff10\uff10", "invalid_amount"),  # fullwidth digits
    ("\u0967\u0966", "invalid_amount"),  # Devanagari digits
    ("1_0", "invalid_amount"),  # Decimal() reads 10
    ("$1,0,0", "invalid_amount"),  # commas not between groups of three
    ("1,00", "invalid_amount"), ("10,000,00", "invalid_amount"), (",100", "invalid_amount"),
    ("0,100", "invalid_amount"), ("1,000.", "invalid_amount"), (".5", "invalid_amount"),
    ("10.001", "invalid_amount"), ("1e3", "invalid_amount"), ("NaN", "invalid_amount"),
    ("Infinity", "invalid_amount"), ("-5", "invalid_amount"), ("+5", "invalid_amount"), ("$$5", "invalid_amount"),
    ("5$", "invalid_amount"), ("$ 5", "invalid_amount"), ("²", "invalid_amount"), ("0x1F", "invalid_amount"),
    ("", "invalid_amount"), ("ten", "invalid_amount"), ("9" * 40, "invalid_amount"),
    ("4.99", "amount_out_of_range"), ("5,000.01", "amount_out_of_range"),
])
def test_any_other_money_text_is_refused_with_a_clear_message(text, code):
    from billing.money import money_amount_parse
    from console.errors import DomainError

    with pytest.raises(DomainError) as refused:
        money_amount_parse(text, minimum=Decimal(5), maximum=Decimal(5000))
    assert refused.value.code == code and refused.value.message.startswith("Enter an amount")


@pytest.mark.parametrize("custom", ["\u0665\u0660", "\uff15\uff10.\uff10\uff10", "1_0", "$1,0,0"])
def test_add_funds_refuses_digits_other_than_ascii_and_starts_no_payment(org, admin_client, stripe_fake, custom):
    response = start_card_step(admin_client, org, preset="10.00", custom=custom)
    assert response.status_code == 200 and response.context["step"] == "amount"
    assert "Enter an amount such as 25 or 1,250.50, in digits 0-9." in response.content.decode()
    assert not stripe_fake.client().v1.setup_intents.list().data  # no card form was started
    paid = admin_client.post(reverse("billing:add_funds_pay", kwargs={"org_id": org.public_id}),
                             {"amount": custom, "setup_intent": "seti_whatever"}).json()
    assert paid["code"] == "invalid_amount" and not CardPayment.objects.exists()


def test_add_funds_reads_thousands_and_a_dollar_sign(org, admin_client, stripe_fake):
    response = start_card_step(admin_client, org, custom="$1,250.50")
    assert response.context["amount"] == Decimal("1250.50") and "Pay $1,250.50" in response.content.decode()


def test_a_custom_amount_wins_over_the_preset(org, admin_client, stripe_fake):
    response = start_card_step(admin_client, org, preset="10.00", custom="42.50")
    assert response.context["amount"] == Decimal("42.50") and "Pay $42.50" in response.content.decode()


@pytest.mark.parametrize(("role", "status"), [("admin", 200), ("member", 403), ("outsider", 404)])
def test_only_org_admins_see_payment_pages(org, client_as, stripe_fake, role, status):
    client = client_as(role)
    for name in ("billing:add_funds", "billing:auto_recharge"):
        assert client.get(reverse(name, kwargs={"org_id": org.public_id})).status_code == status


def test_paying_asks_for_the_password_again(org, client_as, stripe_fake):
    response = start_card_step(client_as("admin"), org, preset="10.00")
    assert response.status_code == 302 and response["Location"].startswith(reverse("account_reauthenticate"))
    assert not stripe_fake.payment_intents()


def test_without_stripe_keys_the_add_funds_card_says_what_it_said(org, client_as):
    client = client_as("admin")
    page = client.get(reverse("billing:overview", kwargs={"org_id": org.public_id})).content.decode()
    assert "Top-ups are credited by our team" in page and "Continue to payment" not in page
    assert client.get(reverse("billing:add_funds", kwargs={"org_id": org.public_id})).status_code == 404
    assert Client().post("/stripe/webhook", data="{}", content_type="application/json").status_code == 404


def test_with_stripe_keys_the_billing_page_offers_add_funds_and_loads_no_script_elsewhere(org, admin_client,
                                                                                          stripe_fake):
    page = admin_client.get(reverse("billing:overview", kwargs={"org_id": org.public_id})).content.decode()
    assert reverse("billing:add_funds", kwargs={"org_id": org.public_id}) in page
    assert "js.stripe.com" not in page  # Stripe.js is loaded by the card step only
    card_step = start_card_step(admin_client, org, preset="10.00").content.decode()
    assert f'src="{stripe_fake.base}/js.stripe.com/v3/"' in card_step


@pytest.mark.parametrize(("role", "status"), [("admin", 200), ("member", 404), ("outsider", 404)])
def test_receipts_are_for_the_organizations_admins(org, admin_client, client_as, stripe_fake, role, status):
    pay(admin_client, org, stripe_fake)
    payment = CardPayment.objects.get(organization=org)
    deliver_succeeded(admin_client, stripe_fake, payment)
    client = admin_client if role == "admin" else client_as(role)
    url = reverse("billing:receipt", kwargs={"org_id": org.public_id, "intent_id": payment.payment_intent_id})
    assert client.get(url).status_code == status


def test_stripe_unreachable_is_a_message_not_an_error(org, admin_client, stripe_fake, settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens there
    response = start_card_step(admin_client, org, preset="10.00")
    assert response.status_code == 200 and "Card payments are unavailable right now." in response.content.decode()
    assert not CardPayment.objects.exists()


def test_the_next_call_after_a_card_top_up_gets_the_new_rate_tier(org, admin_client, stripe_fake, gateway):
    from billing.tests.factories import ProjectFactory, make_api_key

    raw, _key = make_api_key(project=ProjectFactory(organization=org))
    assert gateway.authorize(raw).json()["error"]["code"] == "insufficient_balance"
    pay(admin_client, org, stripe_fake, amount="10.00")
    deliver_succeeded(admin_client, stripe_fake, CardPayment.objects.get(organization=org))
    answer = gateway.authorize(raw)
    assert answer.status_code == 200 and answer["X-RateLimit-Limit-Tokens"] == "2000000"  # Tier1's TPM
