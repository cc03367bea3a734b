"""The Members page: list, role changes, removal (with the projects hook), leaving."""

from __future__ import annotations

import threading

import pytest
from allauth.mfa.models import Authenticator
from django.db import connection
from django.urls import reverse

from console.errors import DomainError
from orgs.models import AuditEvent, Membership, Role
from orgs.services import membership_remove, membership_role_change
from orgs.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def _members_url(org):
    return reverse("orgs:members", args=[org.public_id])


def test_admin_sees_members_with_role_mfa_and_last_login(client_as, org):
    client = client_as("admin")
    other = MembershipFactory(organization=org, role=Role.MEMBER).user
    Authenticator.objects.create(user=other, type=Authenticator.Type.TOTP, data={})
    page = client.get(_members_url(org)).content.decode()
    assert other.email in page and client.user.email in page
    assert "Change role" in page
    assert "Remove</a>" in page
    assert '<span class="badge success">On</span>' in page  # the TOTP user
    assert "Never" in page  # nobody has logged in through a form in this test
    assert "Invite a member" in page


def test_member_sees_read_only_list(client_as, org):
    admin = MembershipFactory(organization=org, role=Role.ADMIN).user
    client = client_as("member")
    page = client.get(_members_url(org)).content.decode()
    assert admin.email in page
    assert "Read only" in page
    assert "Change role" not in page
    assert "Remove</a>" not in page
    assert "Invite a member" not in page
    assert "Leave</a>" in page  # only on their own row


def _member(org, role=Role.MEMBER):
    return MembershipFactory(organization=org, role=role)


@pytest.mark.parametrize(("role", "status"), [("outsider", 404), ("member", 403), ("admin", 302)])
def test_role_change_role_matrix(client_as, reauthenticate, org, role, status):
    target = _member(org)
    client = reauthenticate(client_as(role))
    url = reverse("orgs:member_role", args=[org.public_id, target.pk])
    assert client.post(url, {"role": Role.ADMIN}).status_code == status
    target.refresh_from_db()
    assert target.role == (Role.ADMIN if role == "admin" else Role.MEMBER)


@pytest.mark.parametrize(("role", "status"), [("outsider", 404), ("member", 403), ("admin", 200)])
def test_remove_page_role_matrix(client_as, org, role, status):
    target = _member(org)
    response = client_as(role).get(reverse("orgs:member_remove", args=[org.public_id, target.pk]))
    assert response.status_code == status


@pytest.mark.parametrize(("role", "status"), [("outsider", 404), ("member", 403), ("admin", 302)])
def test_remove_post_role_matrix(client_as, reauthenticate, org, role, status):
    target = _member(org)
    client = reauthenticate(client_as(role))
    assert client.post(reverse("orgs:member_remove", args=[org.public_id, target.pk])).status_code == status
    assert Membership.objects.filter(pk=target.pk).exists() == (role != "admin")


def test_member_of_another_org_is_404_even_for_admins(client_as, org, outsider):
    foreign = Membership.objects.get(user=outsider)
    client = client_as("admin")
    assert client.get(reverse("orgs:member_remove", args=[org.public_id, foreign.pk])).status_code == 404


def test_promote_member_records_audit_and_says_so(client_as, reauthenticate, org):
    client = reauthenticate(client_as("admin"))
    target = _member(org)
    url = reverse("orgs:member_role", args=[org.public_id, target.pk])
    response = client.post(url, {"role": Role.ADMIN}, follow=True)
    assert f"{target.user.display_name} is now Organization Administrator." in response.content.decode()
    event = AuditEvent.objects.get(action="membership.role_change")
    assert (event.before["role"], event.after["role"]) == ("General Member", "Organization Administrator")
    assert event.actor == client.user


def test_role_change_asks_for_the_password_first(client_as, org):
    client = client_as("admin")  # logged in, but not recently re-authenticated
    target = _member(org)
    response = client.post(reverse("orgs:member_role", args=[org.public_id, target.pk]), {"role": Role.ADMIN})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_reauthenticate"))
    target.refresh_from_db()
    assert target.role == Role.MEMBER


def test_role_change_resumes_after_reauthentication(client_as, org):
    from console.tests.factories import TEST_PASSWORD

    client = client_as("admin")
    target = _member(org)
    url = reverse("orgs:member_role", args=[org.public_id, target.pk])
    location = client.post(url, {"role": Role.ADMIN})["Location"]
    response = client.post(location, {"password": TEST_PASSWORD})
    assert response.status_code == 302
    target.refresh_from_db()
    assert target.role == Role.ADMIN


def test_bad_role_value_changes_nothing(client_as, reauthenticate, org):
    client = reauthenticate(client_as("admin"))
    target = _member(org)
    response = client.post(reverse("orgs:member_role", args=[org.public_id, target.pk]), {"role": 99}, follow=True)
    assert "Choose a valid role." in response.content.decode()
    target.refresh_from_db()
    assert target.role == Role.MEMBER


def test_last_admin_cannot_demote_themselves(client_as, reauthenticate, org):
    client = reauthenticate(client_as("admin"))
    own = Membership.objects.get(user=client.user)
    url = reverse("orgs:member_role", args=[org.public_id, own.pk])
    response = client.post(url, {"role": Role.MEMBER}, follow=True)
    assert "is the last administrator" in response.content.decode()
    own.refresh_from_db()
    assert own.role == Role.ADMIN
    assert not AuditEvent.objects.filter(action="membership.role_change").exists()


def test_admin_may_step_down_when_another_admin_remains(org, org_admin):
    other_admin = _member(org, Role.ADMIN)
    own = Membership.objects.get(user=org_admin)
    membership_role_change(membership=own, actor=org_admin, role=Role.MEMBER)
    own.refresh_from_db()
    assert own.role == Role.MEMBER
    with pytest.raises(DomainError) as error:  # now a member: may not promote themselves back
        membership_role_change(membership=own, actor=org_admin, role=Role.ADMIN)
    assert error.value.code == "not_admin"
    assert Membership.objects.get(pk=other_admin.pk).role == Role.ADMIN


def test_remove_page_shows_what_will_happen(client_as, org, removal_hook):
    client = client_as("admin")
    target = _member(org)
    page = client.get(reverse("orgs:member_remove", args=[org.public_id, target.pk])).content.decode()
    text = " ".join(page.split())
    assert f"Removing {target.user.display_name} removes them from <strong>3 projects</strong>" in text
    assert "revokes <strong>5 API keys</strong>, last used 2 hours ago" in text
    assert f"Remove {target.user.display_name}</button>" in page


def test_remove_page_without_projects_says_nothing_is_affected(client_as, org, monkeypatch):
    from orgs import hooks

    monkeypatch.setattr(hooks, "_impact_providers", [])
    target = _member(org)
    page = client_as("admin").get(reverse("orgs:member_remove", args=[org.public_id, target.pk])).content.decode()
    assert "affects no project and revokes no API key" in page


def test_remove_runs_the_projects_hook_in_the_same_transaction(client_as, reauthenticate, org, removal_hook):
    client = reauthenticate(client_as("admin"))
    target = _member(org)
    response = client.post(reverse("orgs:member_remove", args=[org.public_id, target.pk]), follow=True)
    assert f"{target.user.display_name} was removed from {org.name}." in response.content.decode()
    assert not Membership.objects.filter(pk=target.pk).exists()
    [call] = removal_hook
    assert call["actor"] == client.user
    assert call["in_transaction"] and call["row_exists"]  # before the membership row is deleted
    event = AuditEvent.objects.get(action="membership.remove")
    assert event.before["user"] == target.user.email


def test_a_failing_hook_leaves_the_member_in_place(org, org_admin, monkeypatch):
    from orgs import hooks

    target = _member(org)

    def failing(*, membership, actor):
        raise RuntimeError("projects could not revoke keys")

    monkeypatch.setattr(hooks, "_removal_handlers", [failing])
    with pytest.raises(RuntimeError):
        membership_remove(membership=target, actor=org_admin)
    assert Membership.objects.filter(pk=target.pk).exists()
    assert not AuditEvent.objects.filter(action="membership.remove").exists()


def test_removal_asks_for_the_password_first(client_as, org):
    target = _member(org)
    response = client_as("admin").post(reverse("orgs:member_remove", args=[org.public_id, target.pk]))
    assert response["Location"].startswith(reverse("account_reauthenticate"))
    assert Membership.objects.filter(pk=target.pk).exists()


def test_last_admin_cannot_be_removed_or_leave(client_as, reauthenticate, org):
    client = reauthenticate(client_as("admin"))
    own = Membership.objects.get(user=client.user)
    url = reverse("orgs:member_remove", args=[org.public_id, own.pk])
    page = client.get(url).content.decode()
    assert "You are the last administrator" in page
    assert "Leave organization</button>" not in page
    response = client.post(url, follow=True)
    assert "You are the last administrator" in response.content.decode()
    assert Membership.objects.filter(pk=own.pk).exists()


def test_member_leaves_on_their_own(client_as, reauthenticate, org):
    client = reauthenticate(client_as("member"))
    own = Membership.objects.get(user=client.user)
    url = reverse("orgs:member_remove", args=[org.public_id, own.pk])
    assert "Leave organization</button>" in client.get(url).content.decode()
    response = client.post(url)
    assert response["Location"] == reverse("home")
    assert not Membership.objects.filter(pk=own.pk).exists()
    assert AuditEvent.objects.get(action="membership.leave").actor == client.user
    assert client.get(_members_url(org)).status_code == 404


def test_member_cannot_remove_someone_else_through_the_service(org, org_member):
    target = _member(org)
    with pytest.raises(DomainError) as error:
        membership_remove(membership=target, actor=org_member)
    assert error.value.code == "not_admin"


@pytest.mark.django_db(transaction=True)
def test_two_admins_demoting_each_other_at_once_keep_one_admin(org):
    first = _member(org, Role.ADMIN)
    second = _member(org, Role.ADMIN)
    barrier = threading.Barrier(2)
    errors: list[str] = []

    def demote(target, actor):
        try:
            barrier.wait()
            membership_role_change(membership=target, actor=actor, role=Role.MEMBER)
        except DomainError as error:
            errors.append(error.code)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=demote, args=(first, second.user)),
        threading.Thread(target=demote, args=(second, first.user)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Membership.objects.filter(organization=org, role=Role.ADMIN).count() == 1
    assert len(errors) == 1 and errors[0] in ("last_admin", "not_admin")


def test_demotion_runs_the_projects_hook_before_the_role_is_saved(org, org_admin, monkeypatch):
    from orgs import hooks

    target = _member(org, Role.ADMIN)
    calls = []

    def handler(*, membership, actor):
        saved_role = type(membership).objects.get(pk=membership.pk).role
        calls.append((membership.pk, actor, connection.in_atomic_block, saved_role))

    monkeypatch.setattr(hooks, "_demotion_handlers", [handler])
    membership_role_change(membership=target, actor=org_admin, role=Role.MEMBER)
    assert calls == [(target.pk, org_admin, True, Role.ADMIN)]
    membership_role_change(membership=target, actor=org_admin, role=Role.ADMIN)  # a promotion: no call
    assert len(calls) == 1


def test_a_failing_demotion_hook_leaves_the_role_as_it_was(org, org_admin, monkeypatch):
    from orgs import hooks

    target = _member(org, Role.ADMIN)

    def failing(*, membership, actor):
        raise RuntimeError("projects could not revoke keys")

    monkeypatch.setattr(hooks, "_demotion_handlers", [failing])
    with pytest.raises(RuntimeError):
        membership_role_change(membership=target, actor=org_admin, role=Role.MEMBER)
    assert Membership.objects.get(pk=target.pk).role == Role.ADMIN
    assert not AuditEvent.objects.filter(action="membership.role_change").exists()


@pytest.mark.parametrize(
    "entry_point",
    ["demote_self", "leave", "demote_self_view", "leave_view"],
)
def test_the_last_admin_rule_holds_from_every_entry_point(client_as, reauthenticate, org, entry_point):
    """One rule (orgs.permissions.is_last_admin), asked by the role change and the removal, from the
    services and from the pages; a second admin lifts it, and it comes back once they are gone."""
    client = reauthenticate(client_as("admin"))
    admin = Membership.objects.get(user=client.user)

    def attempt() -> str:
        if entry_point == "demote_self":
            membership_role_change(membership=admin, actor=admin.user, role=Role.MEMBER)
        elif entry_point == "leave":
            membership_remove(membership=admin, actor=admin.user)
        else:
            name = "orgs:member_role" if entry_point == "demote_self_view" else "orgs:member_remove"
            response = client.post(reverse(name, args=[org.public_id, admin.pk]), {"role": Role.MEMBER}, follow=True)
            return response.content.decode()
        return ""

    if entry_point.endswith("_view"):
        assert "the last administrator" in attempt()
    else:
        with pytest.raises(DomainError) as error:
            attempt()
        assert error.value.code == "last_admin"
    admin.refresh_from_db()
    assert admin.role == Role.ADMIN
    assert not AuditEvent.objects.filter(action__startswith="membership.").exists()

    second = _member(org, role=Role.ADMIN)  # now the first admin may step down or leave
    attempt()
    assert not Membership.objects.filter(pk=admin.pk, role=Role.ADMIN).exists()
    with pytest.raises(DomainError) as error:  # and the second one is the last admin now
        membership_remove(membership=second, actor=second.user)
    assert error.value.code == "last_admin"
