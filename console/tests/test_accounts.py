from __future__ import annotations

import pytest
from django.conf import settings
from django.core import mail
from django.urls import reverse

from console.models import User
from console.tests.factories import TEST_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-Pass-phrase-42"


def test_signup_uses_email_only_and_sends_verification(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # emails leave through the outbox on commit
        response = client.post(
            reverse("account_signup"),
            {"email": "New.Person@Example.com", "password1": PASSWORD, "password2": PASSWORD},
        )
    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    user = User.objects.get()
    assert user.email.lower() == "new.person@example.com"
    assert len(mail.outbox) == 1
    assert "/accounts/confirm-email/" in mail.outbox[0].body


def test_unverified_user_cannot_use_the_console(client):
    UserFactory(email="unverified@example.com", verified=False)
    response = client.post(reverse("account_login"), {"login": "unverified@example.com", "password": TEST_PASSWORD})
    assert response["Location"] == reverse("account_email_verification_sent")
    assert client.get("/")["Location"].startswith(reverse("account_login"))


def test_verified_user_logs_in_with_email(client, user):
    response = client.post(reverse("account_login"), {"login": user.email.upper(), "password": TEST_PASSWORD})
    assert response.status_code == 302
    assert client.get("/")["Location"] == reverse("orgs:create")


def test_wrong_password_is_refused_with_a_message(client, user):
    response = client.post(reverse("account_login"), {"login": user.email, "password": "wrong-password"})
    assert response.status_code == 200
    assert "The email address and/or password you specified are not correct." in response.content.decode()


def test_duplicate_email_signup_creates_nothing_and_does_not_reveal_the_account(
    client, user, django_capture_on_commit_callbacks
):
    # allauth's enumeration prevention: the page looks like a normal signup, the owner is told by email.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("account_signup"),
            {"email": user.email, "password1": "a-long-Pass-phrase-42", "password2": "a-long-Pass-phrase-42"},
        )
    assert response["Location"] == reverse("account_email_verification_sent")
    assert User.objects.count() == 1
    assert mail.outbox[-1].to == [user.email]
    assert "already" in mail.outbox[-1].body.lower()


def test_activating_two_factor_asks_to_reauthenticate_first(client, user):
    client.force_login(user)
    response = client.get(reverse("mfa_activate_totp"))
    assert response["Location"].startswith(reverse("account_reauthenticate"))
    page = client.get(response["Location"]).content.decode()
    assert 'class="entrance' in page or 'class="account-shell"' in page


@pytest.mark.parametrize("name", ["account_email", "account_change_password", "mfa_index"])
def test_account_pages_render_in_the_console_layout(client, user, name):
    client.force_login(user)
    response = client.get(reverse(name))
    assert response.status_code == 200
    assert 'class="account-shell"' in response.content.decode()


def test_totp_and_recovery_codes_are_enabled():
    assert set(settings.MFA_SUPPORTED_TYPES) == {"totp", "recovery_codes"}
    assert settings.ACCOUNT_EMAIL_VERIFICATION == "mandatory"
    assert {"email"} == settings.ACCOUNT_LOGIN_METHODS
