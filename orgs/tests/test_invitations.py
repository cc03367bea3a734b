"""Invitation links: issuing, the lifecycle (expiry, single use, resend, revoke), and following them."""

from __future__ import annotations

import logging
import re
import threading
from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from console.errors import DomainError
from console.tests.factories import TEST_PASSWORD, UserFactory
from orgs import hooks
from orgs.exceptions import InvitationInvalid
from orgs.invitations import invitation_token_digest
from orgs.models import AuditEvent, Invitation, Membership, Organization, Role, VerificationStatus
from orgs.services import invitation_accept, invitation_create, invitation_resend, invitation_revoke
from orgs.tests.factories import READY_TO_INVITE, MembershipFactory

pytestmark = pytest.mark.django_db

INVALID = "This invitation link is no longer valid — ask your administrator for a new one."


def _accept(issued, user):
    return invitation_accept(digest=invitation_token_digest(issued.token), user=user)


# --- issuing -------------------------------------------------------------------------------------


def test_token_is_prefixed_random_and_only_its_digest_is_stored(invite):
    issued = invite()
    assert re.fullmatch(r"inv_[A-Za-z0-9_\-]{43}", issued.token)
    invitation = Invitation.objects.get()
    assert invitation.digest == invitation_token_digest(issued.token)
    stored = " ".join(str(v) for v in Invitation.objects.values().get().values())
    assert issued.token not in stored
    assert invitation.hint == "inv_…" + issued.token[-4:]
    assert invite("bo@example.com").token != issued.token


def test_invitation_is_emailed_after_commit_with_the_link(ready_org, org_admin, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        issued = invitation_create(organization=ready_org, actor=org_admin, email="ana@example.com", role=Role.MEMBER)
    assert mail.outbox == []  # nothing leaves before the transaction commits
    for callback in callbacks:
        callback()
    [message] = mail.outbox
    assert message.to == ["ana@example.com"]
    assert ready_org.name in message.subject
    assert issued.path in message.body
    assert issued.path in message.alternatives[0][0]
    assert AuditEvent.objects.get(action="invitation.create").after["email"] == "ana@example.com"


def test_default_expiry_is_the_setting_and_admins_choose_1_to_30_days(invite, settings):
    settings.CONSOLE_INVITATION_DAYS = 7
    invitation = invite().invitation
    assert timedelta(days=7) - (invitation.expires_at - timezone.now()) < timedelta(minutes=1)
    assert invite("b@example.com", valid_days=30).invitation.valid_days == 30
    for days in (0, 31):
        with pytest.raises(DomainError) as error:
            invite(f"c{days}@example.com", valid_days=days)
        assert error.value.code == "invalid_days"


def test_incomplete_information_blocks_inviting(org, org_admin):
    Organization.objects.filter(pk=org.pk).update(verification_status=VerificationStatus.VERIFIED)
    org.refresh_from_db()
    with pytest.raises(DomainError) as error:
        invitation_create(organization=org, actor=org_admin, email="a@example.com", role=Role.MEMBER)
    assert error.value.code == "prerequisites"
    assert "legal address" in error.value.message
    assert not Invitation.objects.exists()


def test_verification_is_required_unless_the_setting_relaxes_it(ready_org, org_admin, settings):
    Organization.objects.filter(pk=ready_org.pk).update(verification_status=VerificationStatus.PENDING)
    ready_org.refresh_from_db()
    with pytest.raises(DomainError) as error:
        invitation_create(organization=ready_org, actor=org_admin, email="a@example.com", role=Role.MEMBER)
    assert "enterprise verification" in error.value.message
    settings.CONSOLE_INVITES_REQUIRE_VERIFICATION = False
    invitation_create(organization=ready_org, actor=org_admin, email="a@example.com", role=Role.MEMBER)
    assert Invitation.objects.count() == 1


def test_members_cannot_invite(ready_org, org_member):
    with pytest.raises(DomainError) as error:
        invitation_create(organization=ready_org, actor=org_member, email="a@example.com", role=Role.MEMBER)
    assert error.value.code == "not_admin"


def test_no_second_pending_invitation_and_no_invitation_for_members(invite, ready_org):
    invite("ana@example.com")
    with pytest.raises(DomainError) as error:
        invite("ANA@example.com")
    assert error.value.code == "already_invited"
    member = MembershipFactory(organization=ready_org).user
    with pytest.raises(DomainError) as error:
        invite(member.email.upper())
    assert error.value.code == "already_member"


def test_invalid_role_is_refused(invite):
    with pytest.raises(DomainError) as error:
        invite(role=99)
    assert error.value.code == "invalid_role"


# --- accepting -----------------------------------------------------------------------------------


def test_accept_creates_the_membership_with_the_invited_role(invite, ready_org):
    issued = invite(role=Role.ADMIN)
    ana = UserFactory(email="ana@example.com")
    membership = _accept(issued, ana)
    assert (membership.organization, membership.user, membership.role) == (ready_org, ana, Role.ADMIN)
    issued.invitation.refresh_from_db()
    assert issued.invitation.status == "accepted"
    assert issued.invitation.accepted_by == ana
    assert AuditEvent.objects.get(action="invitation.accept").actor == ana


def test_accept_runs_the_invitation_hook_inside_the_transaction(invite, monkeypatch, project_choices):
    calls = []

    def handler(*, invitation, membership):
        calls.append((invitation.project_grants, membership.pk, connection.in_atomic_block))

    monkeypatch.setattr(hooks, "_invitation_accepted_handlers", [handler])
    issued = invite(project_grants=[{"project_id": "proj_alpha", "role": 10}])
    membership = _accept(issued, UserFactory(email="ana@example.com"))
    assert calls == [([{"project_id": "proj_alpha", "role": 10}], membership.pk, True)]


# --- pre-assigned projects (offered by the projects app through orgs.hooks) ---------------------


def test_project_grants_are_checked_deduplicated_and_audited(invite, project_choices):
    issued = invite(
        project_grants=[
            {"project_id": "proj_beta", "role": 30},
            {"project_id": "proj_alpha", "role": 10},
            {"project_id": "proj_beta", "role": 10},
        ]
    )
    assert issued.invitation.project_grants == [
        {"project_id": "proj_beta", "role": 30},
        {"project_id": "proj_alpha", "role": 10},
    ]
    event = AuditEvent.objects.get(action="invitation.create")
    assert event.after["projects"] == "Beta (Project Administrator), Alpha (General Project Member)"


@pytest.mark.parametrize(
    ("grant", "code"),
    [
        ({"project_id": "proj_elsewhere", "role": 10}, "invalid_project"),
        ({"project_id": "proj_alpha", "role": 99}, "invalid_project_role"),
        ({"project_id": "proj_alpha", "role": "30"}, "invalid_project_role"),
        ({"role": 10}, "invalid_project"),
    ],
)
def test_bad_project_grants_are_refused_and_nothing_is_created(invite, project_choices, grant, code):
    with pytest.raises(DomainError) as error:
        invite(project_grants=[{"project_id": "proj_alpha", "role": 10}, grant])
    assert error.value.code == code
    assert not Invitation.objects.exists()


def test_without_the_projects_app_no_project_can_be_granted(invite, no_project_choices):
    with pytest.raises(DomainError) as error:
        invite(project_grants=[{"project_id": "proj_alpha", "role": 10}])
    assert error.value.code == "invalid_project"


def test_invited_email_matches_case_insensitively(invite):
    issued = invite("Ana.Lopez@Example.com")
    _accept(issued, UserFactory(email="ana.lopez@example.com"))
    assert Membership.objects.filter(user__email="ana.lopez@example.com").exists()


def test_link_is_single_use(invite):
    issued = invite()
    _accept(issued, UserFactory(email="ana@example.com"))
    with pytest.raises(InvitationInvalid):
        _accept(issued, UserFactory(email="other@example.com"))


def test_expired_link_is_invalid(invite):
    issued = invite()
    Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(InvitationInvalid):
        _accept(issued, UserFactory(email="ana@example.com"))
    assert not Membership.objects.filter(user__email="ana@example.com").exists()


def test_revoked_link_is_invalid(invite, org_admin):
    issued = invite()
    invitation_revoke(invitation=issued.invitation, actor=org_admin)
    with pytest.raises(InvitationInvalid):
        _accept(issued, UserFactory(email="ana@example.com"))
    with pytest.raises(DomainError):  # revoked for good: it cannot be resent
        invitation_resend(invitation=issued.invitation, actor=org_admin)


def test_resend_kills_the_old_link_and_the_new_one_works(invite, org_admin):
    old = invite()
    Invitation.objects.update(expires_at=timezone.now() - timedelta(days=1))  # resend also revives expired ones
    new = invitation_resend(invitation=old.invitation, actor=org_admin)
    assert new.token != old.token
    ana = UserFactory(email="ana@example.com")
    with pytest.raises(InvitationInvalid):
        _accept(old, ana)
    assert _accept(new, ana).user == ana
    invitation = Invitation.objects.get()
    assert invitation.send_count == 2 and invitation.status == "accepted"


def test_wrong_email_joins_nothing_and_names_the_masked_address(invite):
    issued = invite("ana@example.com")
    bob = UserFactory(email="bob@example.com")
    with pytest.raises(DomainError) as error:
        _accept(issued, bob)
    assert error.value.code == "wrong_email"
    assert "a***@example.com" in error.value.message
    assert "ana@example.com" not in error.value.message
    assert not Membership.objects.filter(user=bob).exists()
    assert Invitation.objects.get().status == "pending"


def test_an_unverified_address_does_not_count(invite):
    issued = invite("ana@example.com")
    ana = UserFactory(email="ana@example.com", verified=False)
    EmailAddress.objects.create(user=ana, email="ana@example.com", verified=False, primary=True)
    with pytest.raises(DomainError) as error:
        _accept(issued, ana)
    assert error.value.code == "wrong_email"


def test_already_a_member_is_told_and_the_invitation_stays_pending(invite, ready_org):
    issued = invite("ana@example.com")
    ana = UserFactory(email="ana@example.com")
    MembershipFactory(organization=ready_org, user=ana)
    with pytest.raises(DomainError) as error:
        _accept(issued, ana)
    assert error.value.code == "already_member"
    assert Invitation.objects.get().status == "pending"


@pytest.mark.django_db(transaction=True)
def test_concurrent_accepts_create_exactly_one_membership(invite):
    issued = invite("ana@example.com")
    ana = UserFactory(email="ana@example.com")
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def accept():
        try:
            barrier.wait()
            _accept(issued, ana)
            outcomes.append("joined")
        except DomainError as error:
            outcomes.append(error.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=accept) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["invalid", "invalid", "invalid", "joined"]
    assert Membership.objects.filter(user=ana).count() == 1


# --- the members page: issuing, resending, revoking ---------------------------------------------


@pytest.mark.parametrize(("role", "status"), [("outsider", 404), ("member", 403), ("admin", 200)])
def test_invite_role_matrix(client_as, ready_org, role, status):
    url = reverse("orgs:invitation_create", args=[ready_org.public_id])
    response = client_as(role).post(url, {"email": "ana@example.com", "role": Role.MEMBER, "valid_days": 7})
    assert response.status_code == status
    assert Invitation.objects.exists() == (role == "admin")


@pytest.mark.parametrize("action", ["orgs:invitation_resend", "orgs:invitation_revoke"])
@pytest.mark.parametrize(("role", "status"), [("outsider", 404), ("member", 403), ("admin", 200)])
def test_resend_and_revoke_role_matrix(client_as, invite, ready_org, action, role, status):
    issued = invite()
    url = reverse(action, args=[ready_org.public_id, issued.invitation.pk])
    assert client_as(role).post(url).status_code == status
    invitation = Invitation.objects.get()
    changed = invitation.digest != issued.invitation.digest or invitation.revoked_at is not None
    assert changed == (role == "admin")


def test_invitation_of_another_org_is_404(client_as, ready_org, outsider):
    other = Membership.objects.get(user=outsider).organization
    Organization.objects.filter(pk=other.pk).update(**READY_TO_INVITE)
    foreign = invitation_create(organization=other, actor=outsider, email="z@example.com", role=Role.MEMBER)
    # the foreign invitation's id, used under our organization's URL:
    url = reverse("orgs:invitation_revoke", args=[ready_org.public_id, foreign.invitation.pk])
    assert client_as("admin").post(url).status_code == 404
    assert Invitation.objects.get().revoked_at is None


@pytest.mark.parametrize("htmx", [False, True])
def test_admin_invites_and_sees_the_link_once(client_as, ready_org, htmx, django_capture_on_commit_callbacks):
    client = client_as("admin")
    headers = {"HX-Request": "true"} if htmx else {}
    url = reverse("orgs:invitation_create", args=[ready_org.public_id])
    data = {"email": "ana@example.com", "role": Role.MEMBER, "valid_days": 3}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, data, headers=headers)
    body = response.content.decode()
    link = re.search(r'id="invitation-link" type="text" value="([^"]+)"', body).group(1)
    assert link.startswith("http://testserver/invite/inv_")
    assert link.split("testserver")[1] in mail.outbox[0].body
    assert "Copy link" in body
    assert "Invitation for ana@example.com created and emailed." in body
    if htmx:
        assert body.lstrip().startswith('<section id="invitations">')
        assert 'hx-swap-oob="beforeend"' in body
    assert Invitation.objects.get().valid_days == 3
    page = client.get(reverse("orgs:members", args=[ready_org.public_id])).content.decode()
    assert "ana@example.com" in page and "Pending" in page
    assert link not in page and "invitation-link" not in page  # shown once


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"email": "not-an-email", "role": 10, "valid_days": 7}, "Enter a valid email address."),
        ({"email": "a@example.com", "role": 10, "valid_days": 0}, "greater than or equal to 1"),
        ({"email": "a@example.com", "role": 10, "valid_days": 31}, "less than or equal to 30"),
        ({"email": "a@example.com", "role": 99, "valid_days": 7}, "Select a valid choice."),
        ({"email": "", "role": 10, "valid_days": 7}, "This field is required."),
    ],
)
def test_bad_invitation_input_shows_an_error_and_creates_nothing(client_as, ready_org, data, message):
    response = client_as("admin").post(
        reverse("orgs:invitation_create", args=[ready_org.public_id]), data, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Invitation.objects.exists()
    assert mail.outbox == []


def test_duplicate_invitation_shows_the_reason_on_the_email_field(client_as, invite, ready_org):
    invite("ana@example.com")
    response = client_as("admin").post(
        reverse("orgs:invitation_create", args=[ready_org.public_id]),
        {"email": "ana@example.com", "role": 10, "valid_days": 7},
    )
    assert "ana@example.com already has a pending invitation." in response.content.decode()
    assert Invitation.objects.count() == 1


def test_members_page_says_what_is_missing_before_inviting(client_as, org):
    client = client_as("admin")
    page = client.get(reverse("orgs:members", args=[org.public_id])).content.decode()
    assert "Before you can invite members:" in page
    assert "Complete the organization information (missing: legal address, country, tax / registration number)." in page
    assert reverse("orgs:information", args=[org.public_id]) in page
    assert "Complete enterprise verification (status: not verified)." in page
    assert reverse("orgs:verification", args=[org.public_id]) in page
    assert "Send invitation" not in page
    response = client.post(
        reverse("orgs:invitation_create", args=[org.public_id]), {"email": "a@example.com", "role": 10, "valid_days": 7}
    )
    assert "Complete the organization information" in response.content.decode()
    assert not Invitation.objects.exists()


def test_resend_shows_a_new_link_and_revoke_marks_it(client_as, invite, ready_org):
    client = client_as("admin")
    issued = invite()
    response = client.post(
        reverse("orgs:invitation_resend", args=[ready_org.public_id, issued.invitation.pk]),
        headers={"HX-Request": "true"},
    )
    body = response.content.decode()
    assert "the previous link no longer works" in body
    new_link = re.search(r'id="invitation-link" type="text" value="([^"]+)"', body).group(1)
    assert issued.token not in new_link
    response = client.post(
        reverse("orgs:invitation_revoke", args=[ready_org.public_id, issued.invitation.pk]),
        headers={"HX-Request": "true"},
    )
    body = response.content.decode()
    assert "Invitation for ana@example.com revoked" in body
    assert '<span class="badge danger">Revoked</span>' in body
    again = client.post(reverse("orgs:invitation_revoke", args=[ready_org.public_id, issued.invitation.pk]))
    assert "already revoked" in again.content.decode()


def test_invitation_list_filters_by_status(client_as, invite, ready_org, org_admin):
    client = client_as("admin")
    invite("pending@example.com")
    invitation_revoke(invitation=invite("revoked@example.com").invitation, actor=org_admin)
    url = reverse("orgs:members", args=[ready_org.public_id])
    body = client.get(url, {"status": "revoked"}, headers={"HX-Request": "true"}).content.decode()
    assert body.lstrip().startswith('<div class="card" id="invitation-list">')
    assert "revoked@example.com" in body and "pending@example.com" not in body
    body = client.get(url, {"status": "pending"}).content.decode()
    assert "pending@example.com" in body and "revoked@example.com" not in body
    body = client.get(url, {"status": "accepted"}, headers={"HX-Request": "true"}).content.decode()
    assert "No accepted invitations" in body and "pending@example.com" not in body


def _invite_post(client, org, **extra):
    data = {"email": "ana@example.com", "role": Role.MEMBER, "valid_days": 7, **extra}
    return client.post(
        reverse("orgs:invitation_create", args=[org.public_id]), data, headers={"HX-Request": "true"}
    )


def test_invite_form_offers_each_project_with_a_role(client_as, ready_org, project_choices):
    page = client_as("admin").get(reverse("orgs:members", args=[ready_org.public_id])).content.decode()
    assert "Add to projects" in page
    assert 'name="projects" value="proj_alpha"' in page and "Alpha" in page
    assert '<label for="id_project_role_proj_beta" class="visually-hidden">Project role in Beta</label>' in page
    assert '<option value="30">Project Administrator</option>' in page


def test_invite_form_without_projects_has_no_project_list(client_as, ready_org, no_project_choices):
    page = client_as("admin").get(reverse("orgs:members", args=[ready_org.public_id])).content.decode()
    assert "Send invitation" in page
    assert "Add to projects" not in page


def test_inviting_with_projects_stores_the_chosen_roles_and_lists_them(
    client_as, ready_org, project_choices, django_capture_on_commit_callbacks
):
    client = client_as("admin")
    with django_capture_on_commit_callbacks(execute=True):
        response = _invite_post(
            client,
            ready_org,
            projects=["proj_alpha", "proj_beta"],
            project_role_proj_alpha=30,
            project_role_proj_beta=10,
        )
    assert "Invitation for ana@example.com created and emailed." in response.content.decode()
    invitation = Invitation.objects.get()
    assert invitation.project_grants == [
        {"project_id": "proj_alpha", "role": 30},
        {"project_id": "proj_beta", "role": 10},
    ]
    body = " ".join(mail.outbox[0].body.split())
    assert "You will also join 2 projects: - Alpha as Project Administrator - Beta as General Project Member" in body
    assert "<strong>Alpha</strong> as Project Administrator" in mail.outbox[0].alternatives[0][0]
    page = client.get(reverse("orgs:members", args=[ready_org.public_id])).content.decode()
    assert "Joins Alpha, Beta" in page


def test_unticked_projects_are_not_granted_whatever_their_role(client_as, ready_org, project_choices):
    _invite_post(client_as("admin"), ready_org, projects=["proj_beta"], project_role_proj_alpha=30)
    assert Invitation.objects.get().project_grants == [{"project_id": "proj_beta", "role": 10}]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"projects": ["proj_alpha", "proj_of_another_org"]}, "Choose among this organization&#x27;s active projects."),
        ({"projects": ["proj_alpha"], "project_role_proj_alpha": 99}, "Select a valid choice."),
    ],
)
def test_a_bad_project_choice_is_a_form_error(client_as, ready_org, project_choices, extra, message):
    response = _invite_post(client_as("admin"), ready_org, **extra)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Invitation.objects.exists()


def test_the_invitee_sees_the_projects_they_will_join(client, invite, project_choices):
    issued = invite(project_grants=[{"project_id": "proj_beta", "role": 30}])
    page = client.get(reverse("orgs:invitation_open", args=[issued.token]), follow=True).content.decode()
    text = " ".join(page.split())
    assert "You will also join 1 project:" in text
    assert '<strong>Beta</strong> <span class="muted">as Project Administrator</span>' in text
    assert "Alpha" not in text


def test_a_project_archived_since_is_no_longer_listed(client, invite, project_choices, monkeypatch):
    issued = invite(project_grants=[{"project_id": "proj_alpha", "role": 10}, {"project_id": "proj_beta", "role": 10}])
    monkeypatch.setattr(hooks, "_invitation_project_choices", [lambda organization: [("proj_beta", "Beta")]])
    page = client.get(reverse("orgs:invitation_open", args=[issued.token]), follow=True).content.decode()
    assert "You will also join 1 project:" in " ".join(page.split())
    assert "Alpha" not in page


def _invite_many(invite, count):
    """`count` invitations, newest last: inv0@ ... inv<count-1>@."""
    return [invite(f"inv{n}@example.com") for n in range(count)]


def test_invitation_list_is_paginated_newest_first(client_as, invite, ready_org, monkeypatch):
    monkeypatch.setattr("orgs.views.members.INVITATIONS_PER_PAGE", 2)
    _invite_many(invite, 5)
    client = client_as("admin")
    url = reverse("orgs:members", args=[ready_org.public_id])
    first = client.get(url).content.decode()
    assert "inv4@example.com" in first and "inv3@example.com" in first and "inv2@example.com" not in first
    assert "Page 1 of 3 · 5 invitations" in first
    assert f'href="{url}?page=2"' in first and "Older →" in first and "← Newer" not in first
    second = client.get(url, {"page": 2}, headers={"HX-Request": "true"}).content.decode()
    assert second.lstrip().startswith('<div class="card" id="invitation-list">')
    assert "Invite a member" not in second  # the form keeps what the admin typed
    assert "inv2@example.com" in second and "inv1@example.com" in second and "inv4@example.com" not in second
    assert f'hx-get="{url}?page=1"' in second and f'hx-get="{url}?page=3"' in second
    last = client.get(url, {"page": 99}).content.decode()  # past the end: the last page
    assert "inv0@example.com" in last and "Page 3 of 3" in last


def test_invitation_pages_keep_the_status_filter(client_as, invite, ready_org, org_admin, monkeypatch):
    monkeypatch.setattr("orgs.views.members.INVITATIONS_PER_PAGE", 2)
    invitations = _invite_many(invite, 4)
    invitation_revoke(invitation=invitations[3].invitation, actor=org_admin)
    url = reverse("orgs:members", args=[ready_org.public_id])
    body = client_as("admin").get(url, {"status": "pending"}).content.decode()
    assert "Page 1 of 2 · 3 invitations" in body
    assert f'href="{url}?status=pending&page=2"' in body
    assert "inv3@example.com" not in body


def test_a_short_invitation_list_has_no_page_links(client_as, invite, ready_org):
    _invite_many(invite, 2)
    body = client_as("admin").get(reverse("orgs:members", args=[ready_org.public_id])).content.decode()
    assert "2 invitations" in body
    assert "Older →" not in body and "Page 1" not in body


def test_resending_from_a_later_page_comes_back_to_that_page(client_as, invite, ready_org, monkeypatch):
    monkeypatch.setattr("orgs.views.members.INVITATIONS_PER_PAGE", 2)
    invitations = _invite_many(invite, 3)
    client = client_as("admin")
    members_url = reverse("orgs:members", args=[ready_org.public_id])
    page2 = client.get(members_url, {"page": 2}).content.decode()
    resend_url = reverse("orgs:invitation_resend", args=[ready_org.public_id, invitations[0].invitation.pk])
    assert f'action="{resend_url}?status=&amp;page=2"' in page2
    body = client.post(resend_url + "?status=&page=2", headers={"HX-Request": "true"}).content.decode()
    assert "Page 2 of 2" in body and "inv0@example.com" in body


# --- following the link --------------------------------------------------------------------------


def _open(client, issued):
    return client.get(reverse("orgs:invitation_open", args=[issued.token]))


def test_anonymous_visitor_sees_org_inviter_and_both_ways_in(client, invite, ready_org, org_admin):
    issued = invite("ana@example.com")
    response = _open(client, issued)
    assert response.status_code == 302 and response["Location"] == reverse("orgs:invitation")
    assert response["Referrer-Policy"] == "no-referrer"
    page = client.get(reverse("orgs:invitation"))
    assert page["Referrer-Policy"] == "no-referrer"
    assert page["Cache-Control"] == "no-store"
    body = page.content.decode()
    assert f"Join {ready_org.name}" in body
    assert org_admin.get_full_name() in body
    assert 'href="/accounts/signup/?email=ana%40example.com">Create account</a>' in body
    assert f'href="{reverse("account_login")}">Sign in</a>' in body
    assert issued.token not in body


@pytest.mark.parametrize("case", ["unknown", "expired", "revoked", "used", "malformed"])
def test_every_dead_link_shows_the_same_neutral_page(client, invite, org_admin, case):
    issued = invite("ana@example.com")
    token = issued.token
    if case == "unknown":
        token = "inv_" + "x" * 43
    elif case == "malformed":
        token = "hello"
    elif case == "expired":
        Invitation.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    elif case == "revoked":
        invitation_revoke(invitation=issued.invitation, actor=org_admin)
    elif case == "used":
        _accept(issued, UserFactory(email="ana@example.com"))
    response = client.get(reverse("orgs:invitation_open", args=[token]))
    assert response.status_code == 404
    assert response["Referrer-Policy"] == "no-referrer"
    body = response.content.decode()
    assert INVALID in body
    assert issued.invitation.organization.name not in body


def test_invitation_page_without_a_pending_invitation_is_the_neutral_page(client):
    response = client.get(reverse("orgs:invitation"))
    assert response.status_code == 404
    assert INVALID in response.content.decode()


def test_logged_in_with_the_invited_address_joins_with_one_click(client, invite, ready_org):
    issued = invite("ana@example.com", role=Role.MEMBER)
    ana = UserFactory(email="ana@example.com")
    client.force_login(ana)
    _open(client, issued)
    body = client.get(reverse("orgs:invitation")).content.decode()
    assert f"Join {ready_org.name}</button>" in body
    response = client.post(reverse("orgs:invitation_accept"), follow=True)
    assert response.redirect_chain[-1][0] == reverse("orgs:overview", args=[ready_org.public_id])
    assert f"Welcome to {ready_org.name}! You joined as General Member." in response.content.decode()
    assert Membership.objects.get(user=ana).role == Role.MEMBER


def test_logged_in_with_another_address_is_told_which_one_to_use(client, invite):
    issued = invite("ana@example.com")
    bob = UserFactory(email="bob@example.com")
    client.force_login(bob)
    _open(client, issued)
    body = client.get(reverse("orgs:invitation")).content.decode()
    assert "This invitation was sent to <strong>a***@example.com</strong>" in body
    assert "ana@example.com" not in body
    assert "Sign out and use another account" in body
    response = client.post(reverse("orgs:invitation_accept"), follow=True)
    assert "a***@example.com" in response.content.decode()
    assert not Membership.objects.filter(user=bob).exists()


def test_signing_out_keeps_the_invitation_for_the_right_account(client, invite, ready_org):
    issued = invite("ana@example.com")
    client.force_login(UserFactory(email="bob@example.com"))
    _open(client, issued)
    response = client.post(reverse("account_logout"), {"next": reverse("orgs:invitation")})
    assert response["Location"] == reverse("orgs:invitation")
    assert f"Join {ready_org.name}" in client.get(reverse("orgs:invitation")).content.decode()


def test_already_a_member_is_told_so(client, invite, ready_org):
    issued = invite("ana@example.com")
    ana = UserFactory(email="ana@example.com")
    client.force_login(ana)
    _open(client, issued)
    MembershipFactory(organization=ready_org, user=ana)
    body = client.get(reverse("orgs:invitation")).content.decode()
    assert f"You are already a member of {ready_org.name}." in body


def test_login_through_the_link_joins_and_lands_in_the_org(client, invite, ready_org):
    issued = invite("ana@example.com")
    UserFactory(email="ana@example.com")
    _open(client, issued)
    response = client.post(reverse("account_login"), {"login": "ana@example.com", "password": TEST_PASSWORD})
    assert response["Location"] == reverse("orgs:invitation")
    response = client.get(response["Location"])
    assert response["Location"] == reverse("orgs:overview", args=[ready_org.public_id])
    assert Membership.objects.filter(organization=ready_org, user__email="ana@example.com").exists()
    body = client.get(response["Location"]).content.decode()
    assert f"Welcome to {ready_org.name}!" in body


def _confirmation_link() -> str:
    match = re.search(r"/accounts/confirm-email/[^/\s]+/", mail.outbox[-1].body)
    assert match, mail.outbox[-1].body
    return match.group(0)


def test_signup_and_email_verification_through_the_link_joins(
    client, invite, ready_org, django_capture_on_commit_callbacks
):
    issued = invite("ana@example.com")
    mail.outbox.clear()
    _open(client, issued)
    signup = client.get(reverse("account_signup") + "?email=ana%40example.com").content.decode()
    assert 'value="ana@example.com"' in signup
    with django_capture_on_commit_callbacks(execute=True):  # the verification email leaves on commit
        client.post(
            reverse("account_signup"),
            {"email": "ana@example.com", "password1": "a-long-Pass-phrase-42", "password2": "a-long-Pass-phrase-42"},
        )
    assert not Membership.objects.filter(user__email="ana@example.com").exists()  # not before verification
    response = client.post(_confirmation_link(), follow=True)
    assert response.redirect_chain[-1][0] == reverse("orgs:overview", args=[ready_org.public_id])
    assert Membership.objects.get(user__email="ana@example.com").role == Role.MEMBER


def test_signup_with_another_address_cannot_join(client, invite, django_capture_on_commit_callbacks):
    issued = invite("ana@example.com")
    mail.outbox.clear()
    _open(client, issued)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("account_signup"),
            {"email": "mallory@example.com", "password1": "a-long-Pass-phrase-4", "password2": "a-long-Pass-phrase-4"},
        )
    response = client.post(_confirmation_link(), follow=True)
    assert response.redirect_chain[-1][0] == reverse("orgs:invitation")
    assert "This invitation was sent to <strong>a***@example.com</strong>" in response.content.decode()
    assert not Membership.objects.filter(user__email="mallory@example.com").exists()


def test_tokens_never_reach_the_logs(client, invite, caplog):
    issued = invite("ana@example.com")
    with caplog.at_level(logging.DEBUG):
        _open(client, issued)
        client.get(reverse("orgs:invitation_open", args=["inv_" + "y" * 43]))
    logged = " ".join(str(record.msg) + record.getMessage() for record in caplog.records)
    assert "/invite/inv_[redacted]" in logged
    assert issued.token not in logged
    assert issued.token[4:] not in logged


def test_a_stale_pending_invitation_does_not_hijack_a_normal_login(client, invite, org_admin):
    issued = invite("ana@example.com")
    _open(client, issued)
    invitation_revoke(invitation=issued.invitation, actor=org_admin)
    UserFactory(email="ana@example.com")
    response = client.post(reverse("account_login"), {"login": "ana@example.com", "password": TEST_PASSWORD})
    assert response["Location"] == reverse("home")


def test_the_invitation_email_goes_through_the_outbox_and_keeps_no_usable_link(
    invite, ready_org, django_capture_on_commit_callbacks
):
    from console.models import OutboxEmail

    with django_capture_on_commit_callbacks(execute=True):
        issued = invite("ana@example.com")
    [message] = mail.outbox
    assert message.subject == f"[Console] You are invited to join {ready_org.name}"
    email = OutboxEmail.objects.get(template="invitation")
    assert (email.status, email.to, email.organization_ref) == ("sent", ["ana@example.com"], ready_org.public_id)
    assert email.context["link"] == ""  # blanked once sent: the outbox keeps no working token
    assert issued.token not in str(email.context)
    with django_capture_on_commit_callbacks(execute=True):
        invitation_resend(invitation=issued.invitation, actor=issued.invitation.invited_by)
    assert OutboxEmail.objects.filter(template="invitation").count() == 2  # a resend is its own email
    assert len(mail.outbox) == 2
