"""Every state change of organizations, memberships and the audit trail."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Model
from django.utils import timezone

from console.context import client_ip
from console.models import User

from .models import AuditEvent, Membership, Organization, Role

ORGANIZATION_INFO_FIELDS = ("name", "registered_email", "legal_address", "country", "tax_number", "website")


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def snapshot(obj: Model, fields: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """A JSON-safe picture of some fields, for an audit event's before/after."""
    return {field: _jsonable(getattr(obj, field)) for field in fields}


def audit_record(
    *,
    actor: User | None,
    organization: Organization | None,
    action: str,
    target: Model | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one audit event; the client's IP comes from the request context when there is one."""
    return AuditEvent.objects.create(
        organization=organization,
        actor=actor,
        actor_label=actor.email if actor else "system",
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=str(target)[:254] if target is not None else "",
        before=before,
        after=after,
        ip=client_ip.get(),
    )


@transaction.atomic
def organization_create(*, actor: User, name: str, registered_email: str) -> Organization:
    """Create an organization with the actor as its first Organization Administrator."""
    organization = Organization.objects.create(
        name=name.strip(), registered_email=registered_email.strip(), created_by=actor
    )
    Membership.objects.create(
        organization=organization, user=actor, role=Role.ADMIN, last_used_at=timezone.now()
    )
    audit_record(
        actor=actor,
        organization=organization,
        action="organization.create",
        target=organization,
        after=snapshot(organization, ORGANIZATION_INFO_FIELDS),
    )
    return organization


@transaction.atomic
def organization_update(*, organization: Organization, actor: User, data: dict[str, Any]) -> Organization:
    """Update the organization's information; records the before/after of changed fields only."""
    organization = Organization.objects.select_for_update().get(pk=organization.pk)
    before = snapshot(organization, ORGANIZATION_INFO_FIELDS)
    for field in ORGANIZATION_INFO_FIELDS:
        if field in data:
            value = data[field]
            setattr(organization, field, value.strip() if isinstance(value, str) else value)
    after = snapshot(organization, ORGANIZATION_INFO_FIELDS)
    changed = [field for field in ORGANIZATION_INFO_FIELDS if before[field] != after[field]]
    if not changed:
        return organization
    organization.save(update_fields=[*changed, "updated_at"])
    audit_record(
        actor=actor,
        organization=organization,
        action="organization.update",
        target=organization,
        before={field: before[field] for field in changed},
        after={field: after[field] for field in changed},
    )
    return organization


def membership_touch(*, membership: Membership) -> None:
    """Remember this organization as the user's last used one (at most one write a minute)."""
    now = timezone.now()
    if membership.last_used_at and now - membership.last_used_at < timedelta(minutes=1):
        return
    Membership.objects.filter(pk=membership.pk).update(last_used_at=now)
    membership.last_used_at = now
