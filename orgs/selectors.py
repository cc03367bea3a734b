"""Reads for organization pages."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.db.models import Exists, F, OuterRef, QuerySet
from django.urls import reverse

from console.models import User

from .hooks import invitation_project_choices, invitation_project_roles, resource_usage
from .limits import RESOURCE_LABELS, Resource, contact_sales_url, organization_limit
from .models import (
    AuditEvent,
    Invitation,
    Membership,
    Organization,
    VerificationRequest,
    VerificationStatus,
)


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


def members_for_organization(*, organization: Organization) -> QuerySet[Membership]:
    """Members with their user, and whether they protect their login with a second factor."""
    second_factor = Authenticator.objects.filter(
        user=OuterRef("user"), type__in=[Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN]
    )
    return (
        Membership.objects.filter(organization=organization)
        .select_related("user")
        .annotate(mfa_enabled=Exists(second_factor))
        .order_by("-role", "user__name", "user__email")
    )


def invitations_for_organization(*, organization: Organization, status: str = "") -> QuerySet[Invitation]:
    return (
        Invitation.objects.filter(organization=organization)
        .with_status(status)
        .select_related("invited_by", "accepted_by")
    )


@dataclass(frozen=True)
class InvitedProject:
    """A project an invitee joins on acceptance, with the project role they get there."""

    name: str
    role: str


@dataclass(frozen=True)
class InvitationRow:
    invitation: Invitation
    projects: list[InvitedProject]


def invitation_rows(*, organization: Organization, invitations: Iterable[Invitation]) -> list[InvitationRow]:
    """Invitations with the projects they pre-assign, by name. Projects archived since are left out
    (acceptance skips them too). One query for all the rows, none when no invitation names projects."""
    invitations = list(invitations)
    names: dict[str, str] = {}
    if any(invitation.project_grants for invitation in invitations):
        names = dict(invitation_project_choices(organization=organization))
    roles = dict(invitation_project_roles())
    return [
        InvitationRow(
            invitation=invitation,
            projects=[
                InvitedProject(name=names[grant["project_id"]], role=roles.get(grant.get("role"), ""))
                for grant in invitation.project_grants
                if grant.get("project_id") in names
            ],
        )
        for invitation in invitations
    ]


def invited_projects(*, invitation: Invitation) -> list[InvitedProject]:
    return invitation_rows(organization=invitation.organization, invitations=[invitation])[0].projects


def invitation_by_digest(*, digest: str) -> Invitation | None:
    """The invitation behind a link, if it can still be accepted; None looks the same for every other case."""
    return Invitation.objects.pending().select_related("organization", "invited_by").filter(digest=digest).first()


def user_has_verified_email(*, user: User, email: str) -> bool:
    """May `user` act on mail sent to `email`? Only through an address they verified."""
    return EmailAddress.objects.filter(user=user, email__iexact=email, verified=True).exists()


@dataclass(frozen=True)
class Blocker:
    """Something that must be done before members can be invited, with where to do it."""

    message: str
    url: str
    link_label: str


def invite_blockers(*, organization: Organization) -> list[Blocker]:
    blockers = []
    if not organization.information_complete:
        missing = ", ".join(organization.missing_information) or "required fields"
        blockers.append(
            Blocker(
                message=f"Complete the organization information (missing: {missing}).",
                url=reverse("orgs:information", args=[organization.public_id]),
                link_label="Complete information",
            )
        )
    verified = organization.verification_status == VerificationStatus.VERIFIED
    if settings.CONSOLE_INVITES_REQUIRE_VERIFICATION and not verified:
        status = organization.get_verification_status_display().lower()
        blockers.append(
            Blocker(
                message=f"Complete enterprise verification (status: {status}).",
                url=reverse("orgs:verification", args=[organization.public_id]),
                link_label="Go to verification",
            )
        )
    return blockers


def verification_requests_for_organization(*, organization: Organization) -> QuerySet[VerificationRequest]:
    return VerificationRequest.objects.filter(organization=organization).select_related("submitted_by")


@dataclass(frozen=True)
class LimitUsage:
    resource: str
    label: str
    used: int
    limit: int
    contact_url: str

    @property
    def reached(self) -> bool:
        return self.used >= self.limit


def limits_usage(*, organization: Organization) -> list[LimitUsage]:
    """Tier-limited resources: how many are used (counted by their owning app) and allowed."""
    resources: list[Resource] = ["projects", "api_keys"]
    return [
        LimitUsage(
            resource=resource,
            label=RESOURCE_LABELS[resource],
            used=resource_usage(organization=organization, resource=resource),
            limit=organization_limit(organization, resource),
            contact_url=contact_sales_url(organization, resource),
        )
        for resource in resources
    ]
