"""Every state change of organizations, memberships and the audit trail."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import FileField, Model
from django.urls import reverse
from django.utils import timezone

from console.context import client_ip
from console.models import User

from .documents import document_kind, document_problem
from .emails import email_send
from .exceptions import InvitationInvalid, OrgError
from .hooks import (
    invitation_project_choices,
    invitation_project_roles,
    run_invitation_accepted_handlers,
    run_member_demotion_handlers,
    run_member_removal_handlers,
)
from .invitations import invitation_token_new, mask_email
from .models import (
    AuditEvent,
    ContactSalesRequest,
    Invitation,
    Membership,
    Organization,
    Role,
    SalesNeed,
    VerificationRequest,
    VerificationRequestStatus,
    VerificationStatus,
    VerificationTier,
)
from .selectors import admin_count, invite_blockers, invited_projects

ORGANIZATION_INFO_FIELDS = ("name", "registered_email", "legal_address", "country", "tax_number", "website")


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")  # microseconds only clutter the audit log
    return str(value)  # Decimal, Country...: their text form


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
    """Append one audit event; the client's IP comes from the request context when there is one.

    before/after values that JSON cannot hold (datetimes, decimals) are stored as their text.
    """
    before = {key: _jsonable(value) for key, value in before.items()} if before is not None else None
    after = {key: _jsonable(value) for key, value in after.items()} if after is not None else None
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


def _organization_change(
    *, organization: Organization, actor: User | None, data: dict[str, Any], fields: tuple[str, ...], action: str
) -> Organization:
    organization = Organization.objects.select_for_update().get(pk=organization.pk)
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
    """Update the organization's information; records the before/after of changed fields only."""
    return _organization_change(
        organization=organization, actor=actor, data=data, fields=ORGANIZATION_INFO_FIELDS, action="organization.update"
    )


ORGANIZATION_LIMIT_FIELDS = ("projects_limit_override", "api_keys_limit_override", "rate_tier_override")


@transaction.atomic
def organization_limits_update(*, organization: Organization, actor: User, data: dict[str, Any]) -> Organization:
    """Staff set the per-organization overrides agreed through Contact Sales (None/"" = the tier's limit)."""
    tier_names = {str(row["name"]) for row in settings.CONSOLE_RATE_TIERS}
    if data.get("rate_tier_override") and data["rate_tier_override"] not in tier_names:
        raise OrgError(f"Choose one of the rate tiers: {', '.join(sorted(tier_names))}.", code="invalid_rate_tier")
    return _organization_change(
        organization=organization,
        actor=actor,
        data=data,
        fields=ORGANIZATION_LIMIT_FIELDS,
        action="organization.limits_update",
    )


def membership_touch(*, membership: Membership) -> None:
    """Remember this organization as the user's last used one (at most one write a minute)."""
    now = timezone.now()
    if membership.last_used_at and now - membership.last_used_at < timedelta(minutes=1):
        return
    Membership.objects.filter(pk=membership.pk).update(last_used_at=now)
    membership.last_used_at = now


# --- members -------------------------------------------------------------------------------------


def _lock_organization(organization_id: int) -> Organization:
    # Every change to who administers an organization locks its row first: two admins demoting
    # each other at the same moment are serialized, so the last-admin rule cannot be raced.
    return Organization.objects.select_for_update().get(pk=organization_id)


def _role_of(actor: User, organization: Organization) -> int:
    role = Membership.objects.filter(organization=organization, user=actor).values_list("role", flat=True).first()
    if role is None:
        raise OrgError("You are not a member of this organization.", code="not_member")
    return int(role)


def _require_admin(actor: User, organization: Organization) -> int:
    role = _role_of(actor, organization)
    if role < Role.ADMIN:
        raise OrgError("Only organization administrators can do this.", code="not_admin")
    return role


def _lock_membership(membership: Membership, organization: Organization) -> Membership:
    locked = (
        Membership.objects.select_for_update()
        .filter(pk=membership.pk, organization=organization)
        .first()
    )
    if locked is None:
        raise OrgError("This person is no longer a member of the organization.", code="not_found")
    return locked


@transaction.atomic
def membership_role_change(*, membership: Membership, actor: User, role: int) -> Membership:
    """Make a member an admin or the reverse. Nobody grants above their own role; the last admin stays.

    A demoted admin loses what only the admin role gave them: the projects app, through orgs.hooks,
    revokes in the same transaction the keys they made in projects they are not a member of.
    """
    organization = _lock_organization(membership.organization_id)
    actor_role = _require_admin(actor, organization)
    membership = _lock_membership(membership, organization)
    if role not in Role.values:
        raise OrgError("Choose a valid role.", code="invalid_role")
    if role > actor_role:
        raise OrgError("You cannot grant a role above your own.", code="role_above_own")
    if membership.role == role:
        return membership
    if membership.role >= Role.ADMIN > role and admin_count(organization=organization) <= 1:
        raise OrgError(
            f"{membership.user.display_name} is the last administrator of {organization.name}. "
            "Make someone else an administrator first.",
            code="last_admin",
        )
    if membership.role >= Role.ADMIN > role:
        run_member_demotion_handlers(membership=membership, actor=actor)
    before = {"user": membership.user.email, "role": membership.get_role_display()}
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        actor=actor,
        organization=organization,
        action="membership.role_change",
        target=membership,
        before=before,
        after={"user": membership.user.email, "role": membership.get_role_display()},
    )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor: User) -> None:
    """Remove a member (or let them leave): they leave every project and their API keys die, all at once.

    The projects app joins this transaction through orgs.hooks; the last admin can never go.
    """
    organization = _lock_organization(membership.organization_id)
    membership = _lock_membership(membership, organization)
    leaving = membership.user_id == actor.pk
    if not leaving:
        _require_admin(actor, organization)
    if membership.is_admin and admin_count(organization=organization) <= 1:
        if leaving:
            message = (
                f"You are the last administrator of {organization.name}. "
                "Make someone else an administrator before you leave."
            )
        else:
            message = f"{membership.user.display_name} is the last administrator of {organization.name}."
        raise OrgError(message, code="last_admin")
    run_member_removal_handlers(membership=membership, actor=actor)
    audit_record(
        actor=actor,
        organization=organization,
        action="membership.leave" if leaving else "membership.remove",
        target=membership,
        before={"user": membership.user.email, "role": membership.get_role_display()},
    )
    membership.delete()


# --- invitations ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedInvitation:
    """An invitation with its plaintext token: shown once to the admin, then gone."""

    invitation: Invitation
    token: str

    @property
    def path(self) -> str:
        return reverse("orgs:invitation_open", args=[self.token])


def _check_can_invite(*, organization: Organization, actor: User, email: str, role: int) -> None:
    actor_role = _require_admin(actor, organization)
    if role not in Role.values:
        raise OrgError("Choose a valid role.", code="invalid_role")
    if role > actor_role:
        raise OrgError("You cannot invite someone with a role above your own.", code="role_above_own")
    blockers = invite_blockers(organization=organization)
    if blockers:
        raise OrgError(" ".join(b.message for b in blockers), code="prerequisites")
    if Membership.objects.filter(organization=organization, user__email__iexact=email).exists():
        raise OrgError(f"{email} is already a member of {organization.name}.", code="already_member")


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
            raise OrgError("Choose among this organization's active projects.", code="invalid_project")
        if grant.get("role") not in roles:
            raise OrgError("Choose a project role for each project.", code="invalid_project_role")
        checked.setdefault(grant["project_id"], int(grant["role"]))
    return [{"project_id": project_id, "role": role} for project_id, role in checked.items()]


def _send_invitation(*, invitation: Invitation, token: str) -> None:
    organization = invitation.organization
    inviter = invitation.invited_by
    email_send(
        to=[invitation.email],
        subject=f"You are invited to join {organization.name}",
        template="invitation",
        context={
            "organization_name": organization.name,
            "inviter": inviter.get_full_name() if inviter else "An administrator",
            "role": invitation.get_role_display(),
            "projects": invited_projects(invitation=invitation),
            "link": settings.CONSOLE_SITE_URL.rstrip("/") + reverse("orgs:invitation_open", args=[token]),
            "expires_at": invitation.expires_at,
        },
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
    organization = _lock_organization(organization.pk)
    email = email.strip()
    _check_can_invite(organization=organization, actor=actor, email=email, role=role)
    grants = _checked_project_grants(organization=organization, grants=project_grants or [])
    days = settings.CONSOLE_INVITATION_DAYS if valid_days is None else valid_days
    if not 1 <= days <= 30:
        raise OrgError("An invitation is valid for 1 to 30 days.", code="invalid_days")
    now = timezone.now()
    if (
        Invitation.objects.filter(
            organization=organization, email__iexact=email, accepted_at=None, revoked_at=None, expires_at__gt=now
        ).exists()
    ):
        raise OrgError(
            f"{email} already has a pending invitation. Resend or revoke it below.", code="already_invited"
        )
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
    organization = _lock_organization(invitation.organization_id)
    invitation = _lock_invitation(invitation)
    if invitation.accepted_at is not None or invitation.revoked_at is not None:
        raise OrgError(
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
    _require_admin(actor, organization)
    invitation = _lock_invitation(invitation)
    if not invitation.is_pending:
        raise OrgError(
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


def user_has_verified_email(*, user: User, email: str) -> bool:
    return EmailAddress.objects.filter(user=user, email__iexact=email, verified=True).exists()


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
    if not user_has_verified_email(user=user, email=invitation.email):
        raise OrgError(
            f"This invitation was sent to {mask_email(invitation.email)}. "
            f"You are signed in as {user.email}: sign in with the invited address to accept it.",
            code="wrong_email",
        )
    if Membership.objects.filter(organization=organization, user=user).exists():
        raise OrgError(f"You are already a member of {organization.name}.", code="already_member")
    try:
        with transaction.atomic():
            membership = Membership.objects.create(
                organization=organization, user=user, role=invitation.role, last_used_at=timezone.now()
            )
    except IntegrityError:  # joined through another path a moment ago
        raise OrgError(f"You are already a member of {organization.name}.", code="already_member") from None
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


# --- enterprise verification ---------------------------------------------------------------------

VERIFICATION_FIELDS = (
    "legal_name", "registration_number", "country", "address", "contact_name", "contact_email", "contact_phone",
)


def verification_submit(
    *, organization: Organization, actor: User, data: dict[str, Any], document: UploadedFile
) -> VerificationRequest:
    """Open a verification request (one at a time) with its supporting document; the org turns pending.

    The document is stored under a random name before the transaction and removed again if it fails.
    """
    problem = document_problem(document)
    kind = document_kind(document)
    if problem or kind is None:
        raise OrgError(problem or "Upload a PDF, PNG or JPEG file.", code="invalid_document")
    field = VerificationRequest._meta.get_field("document")
    if not isinstance(field, FileField):  # pragma: no cover -- narrows the type for mypy
        raise TypeError("VerificationRequest.document must be a FileField")
    document.seek(0)
    stored_name = field.storage.save(field.generate_filename(None, f"document{kind.extension}"), document)
    try:
        return _verification_submit(
            organization=organization,
            actor=actor,
            data=data,
            document=StoredDocument(
                name=stored_name,
                original_name=(document.name or "document")[:200],
                content_type=kind.content_type,
                size=document.size or 0,
            ),
        )
    except BaseException:
        field.storage.delete(stored_name)
        raise


@dataclass(frozen=True)
class StoredDocument:
    name: str
    original_name: str
    content_type: str
    size: int


@transaction.atomic
def _verification_submit(
    *, organization: Organization, actor: User, data: dict[str, Any], document: StoredDocument
) -> VerificationRequest:
    organization = _lock_organization(organization.pk)
    _require_admin(actor, organization)
    if organization.verification_status == VerificationStatus.PENDING:
        raise OrgError("A verification request is already under review.", code="already_pending")
    if organization.verification_status == VerificationStatus.VERIFIED:
        raise OrgError("This organization is already verified.", code="already_verified")
    values = {field: data.get(field) or "" for field in VERIFICATION_FIELDS}
    request = VerificationRequest.objects.create(
        organization=organization,
        submitted_by=actor,
        document=document.name,
        document_name=document.original_name,
        document_content_type=document.content_type,
        document_size=document.size,
        **{field: value.strip() if isinstance(value, str) else value for field, value in values.items()},
    )
    before = {"verification_status": organization.verification_status}
    organization.verification_status = VerificationStatus.PENDING
    organization.save(update_fields=["verification_status", "updated_at"])
    audit_record(
        actor=actor,
        organization=organization,
        action="verification.submit",
        target=request,
        before=before,
        after={"verification_status": organization.verification_status, "legal_name": request.legal_name},
    )
    return request


def _lock_pending_request(request: VerificationRequest) -> tuple[VerificationRequest, Organization]:
    organization = _lock_organization(request.organization_id)
    locked = VerificationRequest.objects.select_for_update().get(pk=request.pk)
    if locked.status != VerificationRequestStatus.PENDING:
        raise OrgError(f"This request was already {locked.get_status_display().lower()}.", code="not_pending")
    return locked, organization


@transaction.atomic
def verification_approve(*, request: VerificationRequest, actor: User | None) -> VerificationRequest:
    """Staff approve: the organization becomes Enterprise Verified; its registered email is told."""
    request, organization = _lock_pending_request(request)
    request.status = VerificationRequestStatus.APPROVED
    request.reviewed_by = actor
    request.reviewed_at = timezone.now()
    request.save(update_fields=["status", "reviewed_by", "reviewed_at"])
    before = snapshot(organization, ("verification_tier", "verification_status"))
    organization.verification_tier = VerificationTier.ENTERPRISE
    organization.verification_status = VerificationStatus.VERIFIED
    organization.save(update_fields=["verification_tier", "verification_status", "updated_at"])
    audit_record(
        actor=actor, organization=organization, action="verification.approve", target=request,
        before=before, after=snapshot(organization, ("verification_tier", "verification_status")),
    )
    email_send(
        to=[organization.registered_email],
        subject=f"{organization.name} is now Enterprise Verified",
        template="verification_approved",
        context={"organization": organization},
    )
    return request


@transaction.atomic
def verification_reject(*, request: VerificationRequest, actor: User | None, reason: str) -> VerificationRequest:
    """Staff reject with a reason the organization sees (page and email); it may submit again."""
    reason = reason.strip()
    if not reason:
        raise OrgError("Give the organization a reason for the rejection.", code="reason_required")
    request, organization = _lock_pending_request(request)
    request.status = VerificationRequestStatus.REJECTED
    request.reviewed_by = actor
    request.reviewed_at = timezone.now()
    request.rejection_reason = reason
    request.save(update_fields=["status", "reviewed_by", "reviewed_at", "rejection_reason"])
    before = {"verification_status": organization.verification_status}
    organization.verification_status = VerificationStatus.REJECTED
    organization.save(update_fields=["verification_status", "updated_at"])
    audit_record(
        actor=actor, organization=organization, action="verification.reject", target=request,
        before=before, after={"verification_status": organization.verification_status, "reason": reason},
    )
    email_send(
        to=[organization.registered_email],
        subject=f"{organization.name}: verification request not approved",
        template="verification_rejected",
        context={"organization": organization, "reason": reason},
    )
    return request


# --- Contact Sales -------------------------------------------------------------------------------


@transaction.atomic
def contact_sales_request_create(
    *, organization: Organization, actor: User, data: dict[str, Any]
) -> ContactSalesRequest:
    """Store the request (audited) and email it to sales; at most CONSOLE_CONTACT_SALES_PER_HOUR per user."""
    # The user's row is the lock that makes "5 an hour" exact under concurrent posts.
    User.objects.select_for_update().filter(pk=actor.pk).first()
    since = timezone.now() - timedelta(hours=1)
    limit = settings.CONSOLE_CONTACT_SALES_PER_HOUR
    if ContactSalesRequest.objects.filter(user=actor, created_at__gte=since).count() >= limit:
        raise OrgError(
            f"You have sent {limit} requests in the last hour. Please wait a little before sending another.",
            code="rate_limited",
        )
    if data.get("need") not in SalesNeed.values:
        raise OrgError("Choose what you need.", code="invalid_need")
    request = ContactSalesRequest.objects.create(
        organization=organization,
        user=actor,
        name=data["name"].strip(),
        email=data["email"].strip(),
        company=data["company"].strip(),
        need=data["need"],
        message=data["message"].strip(),
    )
    audit_record(
        actor=actor,
        organization=organization,
        action="contact_sales.request",
        target=request,
        after={"need": request.get_need_display(), "company": request.company, "email": request.email},
    )
    email_send(
        to=[settings.CONSOLE_SALES_EMAIL],
        reply_to=[request.email],
        subject=f"Contact Sales: {request.get_need_display()} for {request.company}",
        template="contact_sales",
        context={"request": request, "organization": organization},
    )
    return request
