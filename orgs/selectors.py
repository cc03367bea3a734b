"""Reads for organization pages."""

from __future__ import annotations

from django.db.models import F, QuerySet

from console.models import User

from .models import AuditEvent, Membership, Organization


def memberships_for_user(*, user: User) -> QuerySet[Membership]:
    """The user's organizations, last used first (the switcher and the home redirect)."""
    return (
        Membership.objects.filter(user=user)
        .select_related("organization")
        .order_by(F("last_used_at").desc(nulls_last=True), "organization__name")
    )


def audit_events_for_organization(
    *, organization: Organization, action: str = "", actor_id: int | None = None
) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.filter(organization=organization).select_related("actor")
    if action:
        events = events.filter(action=action)
    if actor_id:
        events = events.filter(actor_id=actor_id)
    return events


def audit_filter_choices(*, organization: Organization) -> tuple[list[str], list[tuple[int, str]]]:
    """Actions and actors that occur in the organization's audit log, for the filter form."""
    events = AuditEvent.objects.filter(organization=organization)
    actions = list(events.order_by("action").values_list("action", flat=True).distinct())
    actors = list(
        events.exclude(actor=None)
        .order_by("actor_label")
        .values_list("actor_id", "actor_label")
        .distinct()
    )
    return actions, actors
