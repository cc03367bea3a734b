from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from console.context import client_ip
from orgs.models import AuditEvent, Membership, Organization, Role
from orgs.services import membership_touch, organization_create, organization_update


@pytest.mark.django_db
def test_organization_create_makes_creator_admin_and_audits(user):
    token = client_ip.set("203.0.113.7")
    try:
        org = organization_create(actor=user, name="  Acme  ", registered_email="billing@acme.test")
    finally:
        client_ip.reset(token)
    assert org.name == "Acme"
    assert org.public_id.startswith("org-") and len(org.public_id) == 24
    membership = Membership.objects.get(organization=org, user=user)
    assert membership.role == Role.ADMIN
    event = AuditEvent.objects.get(organization=org)
    assert (event.action, event.actor, event.ip) == ("organization.create", user, "203.0.113.7")
    assert event.after["name"] == "Acme"


@pytest.mark.django_db
def test_org_ids_are_unique_and_not_sequential(user):
    ids = {organization_create(actor=user, name=f"O{i}", registered_email="a@b.test").public_id for i in range(20)}
    assert len(ids) == 20
    assert len({i[:8] for i in ids}) > 1  # not a counter with a shared prefix


@pytest.mark.django_db
def test_organization_update_records_only_changed_fields(org, org_admin):
    organization_update(
        organization=org,
        actor=org_admin,
        data={"name": org.name, "legal_address": "1 Main St", "country": "FR"},
    )
    org.refresh_from_db()
    assert (org.legal_address, org.country.code) == ("1 Main St", "FR")
    event = AuditEvent.objects.get(organization=org, action="organization.update")
    assert event.before == {"legal_address": "", "country": ""}
    assert event.after == {"legal_address": "1 Main St", "country": "FR"}


@pytest.mark.django_db
def test_organization_update_without_change_writes_nothing(org, org_admin):
    organization_update(organization=org, actor=org_admin, data={"name": org.name})
    assert not AuditEvent.objects.filter(action="organization.update").exists()


@pytest.mark.django_db
def test_membership_touch_remembers_last_used_at_most_once_a_minute(org, org_member, membership_of):
    membership = membership_of(org_member, org)
    membership_touch(membership=membership)
    first = Membership.objects.get(pk=membership.pk).last_used_at
    assert first is not None
    membership_touch(membership=membership)
    assert Membership.objects.get(pk=membership.pk).last_used_at == first
    membership.last_used_at = timezone.now() - timedelta(minutes=5)
    membership_touch(membership=membership)
    assert Membership.objects.get(pk=membership.pk).last_used_at > first


def test_information_complete_lists_whats_missing():
    org = Organization(name="A", registered_email="a@b.test")
    assert not org.information_complete
    assert org.missing_information == ["legal address", "country", "tax / registration number"]
