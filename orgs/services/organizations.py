"""Organizations: creation, their information and the limit overrides staff set."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from console.errors import DomainError, Forbidden
from console.models import User

from ..audit import audit_record, snapshot
from ..models import Membership, Organization, Role
from ..permissions import require_org_admin, staff_may

ORGANIZATION_INFO_FIELDS = ("name", "registered_email", "legal_address", "country", "tax_number", "website")
ORGANIZATION_LIMIT_FIELDS = ("projects_limit_override", "api_keys_limit_override", "rate_tier_override")


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


def _organization_change(
    *, organization: Organization, actor: User | None, data: dict[str, Any], fields: tuple[str, ...], action: str
) -> Organization:
    organization = Organization.objects.lock(organization.pk)
    before = snapshot(organization, fields)
    for field in fields:
        if field in data:
            value = data[field]
            setattr(organization, field, value.strip() if isinstance(value, str) else value)
    after = snapshot(organization, fields)
    changed = [field for field in fields if before[field] != after[field]]
    if not changed:
        return organization
    organization.save(update_fields=[*changed, "updated_at"])
    audit_record(
        actor=actor,
        organization=organization,
        action=action,
        target=organization,
        before={field: before[field] for field in changed},
        after={field: after[field] for field in changed},
    )
    return organization


@transaction.atomic
def organization_update(*, organization: Organization, actor: User, data: dict[str, Any]) -> Organization:
    """Update the organization's information (org admins, or staff from the admin); audits changed fields only."""
    if not staff_may(actor, "orgs.change_organization"):
        require_org_admin(actor, organization.pk)
    return _organization_change(
        organization=organization, actor=actor, data=data, fields=ORGANIZATION_INFO_FIELDS, action="organization.update"
    )


@transaction.atomic
def organization_limits_update(*, organization: Organization, actor: User, data: dict[str, Any]) -> Organization:
    """Staff set the per-organization overrides agreed through Contact Sales (None/"" = the tier's limit)."""
    if not staff_may(actor, "orgs.change_organization"):
        raise Forbidden("Only platform staff change an organization's limits.", code="not_staff")
    tier_names = {str(row["name"]) for row in settings.CONSOLE_RATE_TIERS}
    if data.get("rate_tier_override") and data["rate_tier_override"] not in tier_names:
        raise DomainError(
            f"Choose one of the rate tiers: {', '.join(sorted(tier_names))}.",
            code="invalid_rate_tier",
            field="rate_tier_override",
        )
    return _organization_change(
        organization=organization,
        actor=actor,
        data=data,
        fields=ORGANIZATION_LIMIT_FIELDS,
        action="organization.limits_update",
    )
