"""Issue 11, defect 1: a removed or demoted admin's pending invitations die with their role.

Removing or demoting a member revokes, in the same transaction, the invitations they issued; the
confirmation pages list them; accepting re-checks that the issuer may still grant the role.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from console.tests.factories import UserFactory
from orgs.invitations import invitation_token_digest
from orgs.models import AuditEvent, Invitation, Membership, Role
from orgs.services import (
    invitation_accept,
    invitation_create,
    invitation_resend,
    membership_remove,
    membership_role_change,
)
from orgs.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

INVALID = "This invitation link is no longer valid — ask your administrator for a new one."


@pytest.fixture
def admin_b(ready_org):
    return MembershipFactory(organization=ready_org, role=Role.ADMIN, user=UserFactory(name="Bea Admin")).user


def _invite(org, actor, email, role=Role.ADMIN):
    return invitation_create(organization=org, actor=actor, email=email, role=role)


def _accept(issued, user):
    return invitation_accept(digest=invitation_token_digest(issued.token), user=user)


def _refused(issued, user) -> None:
    from orgs.exceptions import InvitationInvalid

    with pytest.raises(InvitationInvalid):
        _accept(issued, user)
    assert not Membership.objects.filter(user=user, organization=issued.invitation.organization).exists()


def test_the_review_reproduction_removed_admins_invitation_no_longer_makes_an_admin(ready_org, org_admin, admin_b):
    issued = _invite(ready_org, admin_b, "alt@example.com")
    membership_remove(membership=Membership.objects.get(user=admin_b), actor=org_admin)
    invitation = Invitation.objects.get(pk=issued.invitation.pk)
    assert invitation.status == "revoked"
    assert invitation.revoked_by == org_admin
    _refused(issued, UserFactory(email="alt@example.com"))
    event = AuditEvent.objects.get(action="invitation.revoke", target_id=str(invitation.pk))
    assert event.actor == org_admin
    assert event.after["reason"] == f"{admin_b.email} was removed from the organization"


def test_demoting_an_admin_revokes_their_pending_invitations(ready_org, org_admin, admin_b):
    as_member = _invite(ready_org, admin_b, "m@example.com", role=Role.MEMBER)
    as_admin = _invite(ready_org, admin_b, "a@example.com", role=Role.ADMIN)
    membership_role_change(membership=Membership.objects.get(user=admin_b), actor=org_admin, role=Role.MEMBER)
    for issued in (as_member, as_admin):  # a General Member may invite no one
        assert Invitation.objects.get(pk=issued.invitation.pk).status == "revoked"
        _refused(issued, UserFactory(email=issued.invitation.email))
    event = AuditEvent.objects.filter(action="invitation.revoke").first()
    assert event.after["reason"] == f"{admin_b.email} is no longer an administrator"


def test_only_their_invitations_and_only_pending_ones(ready_org, org_admin, admin_b):
    _invite(ready_org, admin_b, "theirs@example.com")
    accepted = _invite(ready_org, admin_b, "joined@example.com", role=Role.MEMBER)
    _accept(accepted, UserFactory(email="joined@example.com"))
    ours = _invite(ready_org, org_admin, "ours@example.com")
    handed_over = _invite(ready_org, admin_b, "resent@example.com")
    handed_over = invitation_resend(invitation=handed_over.invitation, actor=org_admin)  # now org_admin's
    membership_remove(membership=Membership.objects.get(user=admin_b), actor=org_admin)
    statuses = dict(Invitation.objects.values_list("email", "accepted_at"))
    assert set(statuses) == {"theirs@example.com", "joined@example.com", "ours@example.com", "resent@example.com"}
    status = {i.email: i.status for i in Invitation.objects.all()}
    assert status == {"theirs@example.com": "revoked", "joined@example.com": "accepted",
                      "ours@example.com": "pending", "resent@example.com": "pending"}
    assert _accept(ours, UserFactory(email="ours@example.com")).role == Role.ADMIN
    assert _accept(handed_over, UserFactory(email="resent@example.com")).role == Role.ADMIN


def test_a_refused_removal_revokes_nothing(ready_org, org_admin):
    issued = _invite(ready_org, org_admin, "alt@example.com")
    from console.errors import DomainError as OrgError

    with pytest.raises(OrgError):  # the last admin cannot leave
        membership_remove(membership=Membership.objects.get(user=org_admin), actor=org_admin)
    assert Invitation.objects.get(pk=issued.invitation.pk).status == "pending"


def test_accepting_rechecks_that_the_issuer_may_still_grant_the_role(ready_org, org_admin, admin_b):
    """Even if the issuer lost the role some other way (the staff admin, a database fix), the link dies."""
    issued = _invite(ready_org, admin_b, "alt@example.com")
    Membership.objects.filter(user=admin_b).update(role=Role.MEMBER)
    _refused(issued, UserFactory(email="alt@example.com"))
    gone = _invite(ready_org, org_admin, "bo@example.com")
    Membership.objects.filter(user=org_admin).delete()
    _refused(gone, UserFactory(email="bo@example.com"))


def test_the_removal_confirmation_lists_their_pending_invitations(client_as, ready_org, admin_b):
    client = client_as("admin")
    _invite(ready_org, admin_b, "alt@example.com")
    _invite(ready_org, admin_b, "intern@example.com", role=Role.MEMBER)
    target = Membership.objects.get(user=admin_b)
    body = client.get(reverse("orgs:member_remove", args=[ready_org.public_id, target.pk])).content.decode()
    text = " ".join(re.sub(r"<[^>]+>", "", body).split())
    assert "revokes the 2 pending invitations Bea Admin sent; their links stop working at once" in text
    assert "alt@example.com" in body and "intern@example.com" in body


def test_the_demotion_confirmation_lists_them_too(client_as, ready_org, admin_b, reauthenticate):
    client = client_as("admin")
    _invite(ready_org, admin_b, "alt@example.com")
    target = Membership.objects.get(user=admin_b)
    url = reverse("orgs:member_role", args=[ready_org.public_id, target.pk])
    body = client.post(url, {"role": Role.MEMBER}).content.decode()
    assert "alt@example.com" in body
    assert Membership.objects.get(pk=target.pk).role == Role.ADMIN  # nothing changed before the confirmation
    reauthenticate(client)
    client.post(url, {"role": Role.MEMBER, "confirmed": "1"})
    assert Membership.objects.get(pk=target.pk).role == Role.MEMBER
    assert Invitation.objects.get(email="alt@example.com").status == "revoked"


def test_the_link_of_a_removed_admin_shows_the_neutral_page(client, ready_org, org_admin, admin_b):
    issued = _invite(ready_org, admin_b, "alt@example.com")
    membership_remove(membership=Membership.objects.get(user=admin_b), actor=org_admin)
    response = client.get(reverse("orgs:invitation_open", args=[issued.token]))
    assert response.status_code == 404
    assert INVALID in response.content.decode()
