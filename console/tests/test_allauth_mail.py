"""allauth's emails go through the outbox: a row per email, delivered by the task, secrets blanked."""

from __future__ import annotations

import re

import pytest
from django.core import mail

from console.models import OutboxEmail


@pytest.mark.django_db
def test_password_reset_email_is_delivered_through_the_outbox_to_the_smtp_server(
    client, user, smtp, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/accounts/password/reset/", {"email": user.email})
    assert response.status_code == 302

    [received] = smtp.messages()
    assert received.envelope_to == [user.email]
    assert received.subject == "[Console] Password Reset Email"
    link = re.search(r"http://testserver/accounts/password/reset/key/\S+/", received.text)
    assert link, received.text
    assert client.get(link.group(0), follow=True).status_code == 200

    email = OutboxEmail.objects.get()
    assert email.unique_key.startswith("allauth:account/email/password_reset_key:")
    assert (email.template, email.status) == ("prerendered", "sent")
    # The reset link is a secret: once sent, the outbox keeps only the subject.
    assert email.context == {"subject": "[Console] Password Reset Email", "text": "", "html": ""}


@pytest.mark.django_db
def test_each_request_is_a_new_email(client, user, django_capture_on_commit_callbacks):
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            client.post("/accounts/password/reset/", {"email": user.email})
    assert OutboxEmail.objects.filter(status="sent").count() == 2
    assert len(mail.outbox) == 2  # the test settings' locmem backend


@pytest.mark.django_db
def test_signup_verification_email_reaches_the_smtp_server(client, smtp, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/accounts/signup/",
            {"email": "new@acme.test", "password1": "a-long-Pass-phrase-42", "password2": "a-long-Pass-phrase-42"},
        )
    [received] = smtp.messages()
    assert received.envelope_to == ["new@acme.test"]
    assert re.search(r"/accounts/confirm-email/\S+/", received.text)
