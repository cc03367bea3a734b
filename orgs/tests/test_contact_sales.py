from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse

from orgs.models import AuditEvent, ContactSalesRequest

pytestmark = pytest.mark.django_db

DATA = {
    "name": "Ana Lopez",
    "email": "ana@acme.test",
    "company": "Acme",
    "need": "api_keys",
    "message": "We need 300 keys for our customers' workloads.",
}


def _url(org, query=""):
    return reverse("orgs:contact_sales", args=[org.public_id]) + query


@pytest.mark.parametrize(("role", "status"), [("anonymous", 302), ("outsider", 404), ("member", 200), ("admin", 200)])
@pytest.mark.parametrize("name", ["orgs:contact_sales", "orgs:contact_sales_done"])
def test_contact_sales_role_matrix(client_as, org, role, status, name):
    assert client_as(role).get(reverse(name, args=[org.public_id])).status_code == status


def test_outsider_cannot_post(client_as, org):
    assert client_as("outsider").post(_url(org), DATA).status_code == 404
    assert not ContactSalesRequest.objects.exists()


def test_form_is_prefilled_and_the_need_preselected(client_as, org):
    client = client_as("member")
    page = client.get(_url(org, "?need=api_keys")).content.decode()
    assert f'value="{client.user.email}"' in page
    assert f'value="{org.name}"' in page
    assert f"{org.name} ({org.public_id})" in page
    assert '<option value="api_keys" selected>More API keys</option>' in page
    page = client.get(_url(org, "?need=<script>")).content.decode()
    assert '<option value="other" selected>Something else</option>' in page


def test_submission_is_stored_emailed_to_sales_and_confirmed(
    client_as, org, settings, django_capture_on_commit_callbacks
):
    settings.CONSOLE_SALES_EMAIL = "deals@console.test"
    client = client_as("member")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(_url(org), DATA, follow=True)
    assert response.redirect_chain[-1][0] == reverse("orgs:contact_sales_done", args=[org.public_id])
    assert "Thanks — your message is on its way" in response.content.decode()
    request = ContactSalesRequest.objects.get()
    assert (request.organization, request.user, request.need) == (org, client.user, "api_keys")
    [message] = mail.outbox
    assert message.to == ["deals@console.test"]
    assert message.reply_to == ["ana@acme.test"]
    assert org.public_id in message.body and "300 keys" in message.body
    event = AuditEvent.objects.get(action="contact_sales.request")
    assert (event.organization, event.actor, event.target_id) == (org, client.user, str(request.pk))
    assert event.after == {"need": "More API keys", "company": "Acme", "email": "ana@acme.test"}


def test_submissions_appear_in_the_audit_log(client_as, org):
    client_as("member").post(_url(org), DATA)
    page = client_as("admin").get(reverse("orgs:audit_log", args=[org.public_id])).content.decode()
    assert "contact_sales.request" in page
    assert "More API keys" in page


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"email": "nope"}, "Enter a valid email address."),
        ({"need": "free-money"}, "Select a valid choice."),
        ({"message": ""}, "This field is required."),
        ({"company": "x" * 300}, "at most 200 characters"),
    ],
)
def test_bad_input_shows_errors_and_stores_nothing(client_as, org, override, message):
    response = client_as("member").post(_url(org), {**DATA, **override})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ContactSalesRequest.objects.exists()
    assert not AuditEvent.objects.filter(action="contact_sales.request").exists()


def test_at_most_five_an_hour_per_user(client_as, org):
    client = client_as("member")
    for _ in range(5):
        assert client.post(_url(org), DATA).status_code == 302
    response = client.post(_url(org), DATA)
    assert response.status_code == 429
    assert "You have sent 5 requests in the last hour." in response.content.decode()
    assert ContactSalesRequest.objects.count() == 5
    assert AuditEvent.objects.filter(action="contact_sales.request").count() == 5  # the refused one left none
    assert client_as("admin").post(_url(org), DATA).status_code == 302  # another user is not limited


def test_staff_see_requests_in_the_admin(client, org, client_as):
    from console.tests.factories import UserFactory

    client_as("member").post(_url(org), DATA)
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    page = client.get(reverse("admin:orgs_contactsalesrequest_changelist")).content.decode()
    assert "Acme" in page and "More API keys" in page
