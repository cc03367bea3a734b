"""The staff admin: what it may not delete, and Contact Sales follow-ups through the audited service."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from console.tests.factories import UserFactory
from orgs.models import AuditEvent, ContactSalesRequest, Invitation, Organization
from orgs.services import contact_sales_request_update

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):  # type: ignore[no-untyped-def]
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def test_staff_cannot_delete_an_organization(staff_client, org):
    url = reverse("admin:orgs_organization_delete", args=[org.pk])
    assert staff_client.get(url).status_code == 403
    assert staff_client.post(url, {"post": "yes"}).status_code == 403
    changelist = staff_client.get(reverse("admin:orgs_organization_changelist")).content.decode()
    assert "delete_selected" not in changelist  # no bulk delete action either
    assert Organization.objects.filter(pk=org.pk).exists()


def test_staff_cannot_delete_an_invitation(staff_client, invite):
    invitation = invite().invitation
    url = reverse("admin:orgs_invitation_delete", args=[invitation.pk])
    assert staff_client.post(url, {"post": "yes"}).status_code == 403
    assert "delete_selected" not in staff_client.get(reverse("admin:orgs_invitation_changelist")).content.decode()
    assert Invitation.objects.filter(pk=invitation.pk).exists()


def _sales_request(org, user) -> ContactSalesRequest:  # type: ignore[no-untyped-def]
    return ContactSalesRequest.objects.create(
        organization=org, user=user, name="Ana", email="ana@acme.test", company="Acme", need="api_keys", message="More"
    )


def test_editing_a_contact_sales_request_in_the_admin_is_audited(staff_client, org, org_member):
    request = _sales_request(org, org_member)
    url = reverse("admin:orgs_contactsalesrequest_change", args=[request.pk])
    now = timezone.now()
    response = staff_client.post(
        url,
        {
            "handled_at_0": now.strftime("%Y-%m-%d"),
            "handled_at_1": now.strftime("%H:%M:%S"),
            "staff_notes": "  Called them; limits raised to 80 keys. ",
        },
    )
    assert response.status_code == 302
    request.refresh_from_db()
    assert request.handled_at is not None
    assert request.staff_notes == "Called them; limits raised to 80 keys."
    event = AuditEvent.objects.get(action="contact_sales.update")
    assert event.actor is not None and event.actor.is_staff
    assert event.organization == org
    assert event.before == {"handled_at": None, "staff_notes": ""}
    assert event.after["staff_notes"] == "Called them; limits raised to 80 keys."
    # Saving again without a change records nothing more.
    staff_client.post(
        url,
        {
            "handled_at_0": timezone.localtime(request.handled_at).strftime("%Y-%m-%d"),
            "handled_at_1": timezone.localtime(request.handled_at).strftime("%H:%M:%S"),
            "staff_notes": request.staff_notes,
        },
    )
    assert AuditEvent.objects.filter(action="contact_sales.update").count() == 1


def test_only_staff_may_follow_a_contact_sales_request_up(org, org_admin):
    from console.errors import Forbidden

    request = _sales_request(org, org_admin)
    with pytest.raises(Forbidden):
        contact_sales_request_update(request=request, actor=org_admin, handled_at=timezone.now(), staff_notes="x")
    request.refresh_from_db()
    assert request.handled_at is None
    assert not AuditEvent.objects.filter(action="contact_sales.update").exists()


def test_staff_cannot_delete_a_contact_sales_request_or_a_user(staff_client, org, org_member):
    request = _sales_request(org, org_member)
    url = reverse("admin:orgs_contactsalesrequest_delete", args=[request.pk])
    assert staff_client.post(url, {"post": "yes"}).status_code == 403
    assert "delete_selected" not in staff_client.get(
        reverse("admin:orgs_contactsalesrequest_changelist")).content.decode()
    assert ContactSalesRequest.objects.filter(pk=request.pk).exists()
    url = reverse("admin:console_user_delete", args=[org_member.pk])
    assert staff_client.post(url, {"post": "yes"}).status_code == 403
    assert type(org_member).objects.filter(pk=org_member.pk, memberships__organization=org).exists()


def test_an_organization_with_ledger_rows_cannot_be_deleted_at_all(org):
    """Not even outside the admin: the append-only ledger PROTECTs its organization."""
    from decimal import Decimal

    from django.db.models import ProtectedError

    from billing.models import LedgerEntry, LedgerKind
    from billing.services.ledger import ledger_post

    ledger_post(organization=org, kind=LedgerKind.TOPUP, amount=Decimal("5"), reference="wire-1", actor=None)
    with pytest.raises(ProtectedError):
        org.delete()
    assert LedgerEntry.objects.filter(organization=org).count() == 1
