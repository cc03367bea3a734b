"""Invitations: issue, resend, revoke and accept a dedicated single-use link.

Only the token's digest is stored (`orgs.invitations`); the plaintext exists in the returned
`IssuedInvitation` (shown once to the admin) and in the email, whose link is blanked in the outbox
once it is sent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import dateformat, timezone

from console.errors import DomainError
from console.models import User
from console.services import absolute_url, email_enqueue

from ..audit import audit_record
from ..exceptions import InvitationInvalid
from ..hooks import invitation_project_choices, invitation_project_roles, run_invitation_accepted_handlers
from ..invitations import invitation_token_new, mask_email
from ..models import Invitation, Membership, Organization, Role
from ..permissions import may_grant, require_org_admin
from ..selectors import invite_blockers, invited_projects, user_has_verified_email


@dataclass(frozen=True)
class IssuedInvitation:
    """An invitation with its plaintext token: shown once to the admin, then gone."""

    invitation: Invitation
    token: str

    @property
    def path(self) -> str:
        return reverse("orgs:invitation_open", args=[self.token])


def _check_can_invite(*, organization: Organization, actor: User, email: str, role: int) -> None:
    actor_role = require_org_admin(actor, organization.pk).role
    if role not in Role.values:
        raise DomainError("Choose a valid role.", code="invalid_role")
    if not may_grant(actor_role, role):
        raise DomainError("You cannot invite someone with a role above your own.", code="role_above_own")
    blockers = invite_blockers(organization=organization)
    if blockers:
        raise DomainError(" ".join(b.message for b in blockers), code="prerequisites")
    if Membership.objects.filter(organization=organization, user__email__iexact=email).exists():
        raise DomainError(f"{email} is already a member of {organization.name}.", code="already_member", field="email")


def _checked_project_grants(*, organization: Organization, grants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The grants as stored: each names an active project of this organization and a project role,
    once. Anything else is refused, so a tampered form cannot reach another organization's project."""
    if not grants:
        return []
    projects = dict(invitation_project_choices(organization=organization))
    roles = {value for value, _ in invitation_project_roles()}
    checked: dict[str, int] = {}
    for grant in grants:
        if grant.get("project_id") not in projects:
            raise DomainError(
                "Choose among this organization's active projects.", code="invalid_project", field="projects"
            )
        if grant.get("role") not in roles:
            raise DomainError("Choose a project role for each project.", code="invalid_project_role")
        checked.setdefault(grant["project_id"], int(grant["role"]))
    return [{"project_id": project_id, "role": role} for project_id, role in checked.items()]


def _send_invitation(*, invitation: Invitation, token: str) -> None:
    """Queue the invitation email in the outbox (sent after commit); each send is its own email."""
    organization = invitation.organization
    inviter = invitation.invited_by
    email_enqueue(
        to=[invitation.email],
        template="invitation",
        context={
            "organization_name": organization.name,
            "inviter": inviter.get_full_name() if inviter else "An administrator",
            "role": invitation.get_role_display(),
            "projects": [asdict(project) for project in invited_projects(invitation=invitation)],
            "link": absolute_url("orgs:invitation_open", token=token),
            "expires_at": dateformat.format(timezone.localtime(invitation.expires_at), "M j, Y H:i"),
        },
        unique_key=f"invitation:{invitation.pk}:{invitation.send_count}",
        organization_ref=organization.public_id,
        sensitive=("link",),
    )


@transaction.atomic
def invitation_create(
    *,
    organization: Organization,
    actor: User,
    email: str,
    role: int,
    valid_days: int | None = None,
    project_grants: list[dict[str, Any]] | None = None,
) -> IssuedInvitation:
    """Issue a dedicated, single-use link bound to `email`, and email it (after commit).

    Requires complete organization information and (unless a setting relaxes it) verification.
    `project_grants` ([{"project_id", "role"}]) pre-assign projects, applied on acceptance.
    """
    organization = Organization.objects.lock(organization.pk)
    email = email.strip()
    _check_can_invite(organization=organization, actor=actor, email=email, role=role)
    grants = _checked_project_grants(organization=organization, grants=project_grants or [])
    days = settings.CONSOLE_INVITATION_DAYS if valid_days is None else valid_days
    if not 1 <= days <= 30:
        raise DomainError("An invitation is valid for 1 to 30 days.", code="invalid_days")
    if Invitation.objects.pending().filter(organization=organization, email__iexact=email).exists():
        raise DomainError(
            f"{email} already has a pending invitation. Resend or revoke it below.",
            code="already_invited",
            field="email",
        )
    now = timezone.now()
    new = invitation_token_new()
    invitation = Invitation.objects.create(
        organization=organization,
        email=email,
        role=role,
        digest=new.digest,
        hint=new.hint,
        valid_days=days,
        project_grants=grants,
        invited_by=actor,
        sent_at=now,
        expires_at=now + timedelta(days=days),
    )
    after: dict[str, Any] = {"email": email, "role": invitation.get_role_display(), "expires_at": invitation.expires_at}
    if grants:
        after["projects"] = ", ".join(f"{p.name} ({p.role})" for p in invited_projects(invitation=invitation))
    audit_record(actor=actor, organization=organization, action="invitation.create", target=invitation, after=after)
    _send_invitation(invitation=invitation, token=new.token)
    return IssuedInvitation(invitation=invitation, token=new.token)


def _lock_invitation(invitation: Invitation) -> Invitation:
    return (
        Invitation.objects.select_for_update(of=("self",))
        .select_related("organization", "invited_by")
        .get(pk=invitation.pk)
    )


@transaction.atomic
def invitation_resend(*, invitation: Invitation, actor: User) -> IssuedInvitation:
    """A new token and a new expiry for a pending or expired invitation: the old link dies at once."""
    organization = Organization.objects.lock(invitation.organization_id)
    invitation = _lock_invitation(invitation)
    if invitation.accepted_at is not None or invitation.revoked_at is not None:
        raise DomainError(
            f"This invitation was {invitation.get_status_display().lower()}; it cannot be resent.",
            code="not_resendable",
        )
    _check_can_invite(organization=organization, actor=actor, email=invitation.email, role=invitation.role)
    now = timezone.now()
    new = invitation_token_new()
    invitation.digest = new.digest
    invitation.hint = new.hint
    invitation.sent_at = now
    invitation.send_count += 1
    invitation.expires_at = now + timedelta(days=invitation.valid_days)
    invitation.invited_by = actor
    invitation.save(update_fields=["digest", "hint", "sent_at", "send_count", "expires_at", "invited_by"])
    audit_record(
        actor=actor,
        organization=organization,
        action="invitation.resend",
        target=invitation,
        after={"email": invitation.email, "expires_at": invitation.expires_at},
    )
    _send_invitation(invitation=invitation, token=new.token)
    return IssuedInvitation(invitation=invitation, token=new.token)


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, actor: User) -> Invitation:
    """The link stops working at once."""
    organization = Organization.objects.get(pk=invitation.organization_id)
    require_org_admin(actor, organization.pk)
    invitation = _lock_invitation(invitation)
    if not invitation.is_pending:
        raise DomainError(
            f"This invitation is already {invitation.get_status_display().lower()}.", code="not_pending"
        )
    invitation.revoked_at = timezone.now()
    invitation.revoked_by = actor
    invitation.save(update_fields=["revoked_at", "revoked_by"])
    audit_record(
        actor=actor, organization=organization, action="invitation.revoke", target=invitation,
        before={"email": invitation.email, "status": "pending"}, after={"status": "revoked"},
    )
    return invitation


@transaction.atomic
def invitation_revoke_issued_by(
    *, membership: Membership, actor: User, reason: str, new_role: int | None = None
) -> int:
    """Revoke the pending invitations `membership`'s user issued that `new_role` could not grant
    (None: they are leaving, so all). Called inside membership_remove / membership_role_change, so
    a member never loses the role while their links keep working. Returns how many."""
    now = timezone.now()
    revoked = 0
    issued = (
        Invitation.objects.pending()
        .select_for_update(of=("self",))
        .filter(organization_id=membership.organization_id, invited_by_id=membership.user_id)
        .order_by("pk")
    )
    for invitation in issued:
        if may_grant(new_role, invitation.role):
            continue
        invitation.revoked_at = now
        invitation.revoked_by = actor
        invitation.save(update_fields=["revoked_at", "revoked_by"])
        audit_record(
            actor=actor, organization=membership.organization, action="invitation.revoke", target=invitation,
            before={"email": invitation.email, "status": "pending"}, after={"status": "revoked", "reason": reason},
        )
        revoked += 1
    return revoked


@transaction.atomic
def invitation_accept(*, digest: str, user: User) -> Membership:
    """Join the organization through a pending invitation addressed to one of the user's verified emails.

    The invitation row is locked, so two concurrent accepts create exactly one membership.
    """
    invitation = (
        Invitation.objects.select_for_update(of=("self",))
        .select_related("organization")
        .filter(digest=digest)
        .first()
    )
    if invitation is None or not invitation.is_pending:
        raise InvitationInvalid
    organization = invitation.organization
    # The issuer must still be able to grant the role now: a link outlives no removal or demotion,
    # even one that did not pass through membership_remove/membership_role_change.
    issuer = (
        Membership.objects.filter(organization=organization, user_id=invitation.invited_by_id).first()
        if invitation.invited_by_id is not None
        else None
    )
    if not may_grant(issuer.role if issuer else None, invitation.role):
        raise InvitationInvalid
    if not user_has_verified_email(user=user, email=invitation.email):
        raise DomainError(
            f"This invitation was sent to {mask_email(invitation.email)}. "
            f"You are signed in as {user.email}: sign in with the invited address to accept it.",
            code="wrong_email",
        )
    if Membership.objects.filter(organization=organization, user=user).exists():
        raise DomainError(f"You are already a member of {organization.name}.", code="already_member")
    try:
        with transaction.atomic():
            membership = Membership.objects.create(
                organization=organization, user=user, role=invitation.role, last_used_at=timezone.now()
            )
    except IntegrityError:  # joined through another path a moment ago
        raise DomainError(f"You are already a member of {organization.name}.", code="already_member") from None
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    run_invitation_accepted_handlers(invitation=invitation, membership=membership)
    audit_record(
        actor=user,
        organization=organization,
        action="invitation.accept",
        target=membership,
        after={"user": user.email, "role": membership.get_role_display(), "invited_email": invitation.email},
    )
    return membership
