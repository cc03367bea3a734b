"""Issue 11, defect 7: opening an invitation link and then logging in never joins by itself.

Joining always takes an explicit Accept by the signed-in invitee; a pending invitation held in the
session is dropped at logout, so the next person on that browser does not inherit it.
"""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.urls import reverse

from console.tests.factories import TEST_PASSWORD, UserFactory
from orgs.models import Membership, Role

pytestmark = pytest.mark.django_db

INVALID = "This invitation link is no longer valid — ask your administrator for a new one."


def _open(client, issued):
    response = client.get(reverse("orgs:invitation_open", args=[issued.token]))
    assert response["Location"] == reverse("orgs:invitation")


def _joined(org, email) -> bool:
    return Membership.objects.filter(organization=org, user__email=email).exists()


def test_the_review_reproduction_login_after_the_link_does_not_join(client, invite, ready_org):
    issued = invite("ana@example.com")
    UserFactory(email="ana@example.com")
    _open(client, issued)
    response = client.post(reverse("account_login"), {"login": "ana@example.com", "password": TEST_PASSWORD})
    assert not _joined(ready_org, "ana@example.com")
    # Back on the invitation, which now asks for the click.
    assert response["Location"] == reverse("orgs:invitation")
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert f"Join {ready_org.name}</button>" in page.content.decode()
    assert not _joined(ready_org, "ana@example.com")
    response = client.post(reverse("orgs:invitation_accept"), follow=True)
    assert response.redirect_chain[-1][0] == reverse("orgs:overview", args=[ready_org.public_id])
    assert f"Welcome to {ready_org.name}! You joined as General Member." in response.content.decode()
    assert Membership.objects.get(organization=ready_org, user__email="ana@example.com").role == Role.MEMBER


def test_signup_and_verification_through_the_link_ask_for_the_click_too(
    client, invite, ready_org, django_capture_on_commit_callbacks
):
    issued = invite("ana@example.com")
    mail.outbox.clear()
    _open(client, issued)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("account_signup"),
            {"email": "ana@example.com", "password1": "a-long-Pass-phrase-42", "password2": "a-long-Pass-phrase-42"},
        )
    link = re.search(r"/accounts/confirm-email/[^/\s]+/", mail.outbox[-1].body).group(0)
    response = client.post(link, follow=True)  # confirming the address logs in
    assert response.redirect_chain[-1][0] == reverse("orgs:invitation")
    assert f"Join {ready_org.name}</button>" in response.content.decode()
    assert not _joined(ready_org, "ana@example.com")
    client.post(reverse("orgs:invitation_accept"))
    assert _joined(ready_org, "ana@example.com")


def test_logging_out_drops_the_pending_invitation(client, invite, ready_org):
    issued = invite("ana@example.com")
    client.force_login(UserFactory(email="bob@example.com"))
    _open(client, issued)
    client.post(reverse("account_logout"))
    response = client.get(reverse("orgs:invitation"))
    assert response.status_code == 404
    assert INVALID in response.content.decode()
    # The next person to sign in on this browser (the invitee, even) is not taken anywhere by it.
    UserFactory(email="ana@example.com")
    response = client.post(reverse("account_login"), {"login": "ana@example.com", "password": TEST_PASSWORD})
    assert response["Location"] == reverse("home")
    assert not _joined(ready_org, "ana@example.com")
    _open(client, issued)  # the link itself still works
    client.post(reverse("orgs:invitation_accept"))
    assert _joined(ready_org, "ana@example.com")


def test_the_wrong_account_is_told_to_open_the_link_again_after_signing_out(client, invite):
    issued = invite("ana@example.com")
    client.force_login(UserFactory(email="bob@example.com"))
    _open(client, issued)
    body = " ".join(client.get(reverse("orgs:invitation")).content.decode().split())
    assert "open the invitation link again" in body
