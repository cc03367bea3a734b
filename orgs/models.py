"""Organizations, memberships and the audit trail."""

from __future__ import annotations

import secrets
import string
from pathlib import PurePath

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_countries.fields import CountryField

ORG_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_org_public_id() -> str:
    # Non-sequential and unguessable: 20 characters from 36 symbols (~103 bits).
    return "org-" + "".join(secrets.choice(ORG_ID_ALPHABET) for _ in range(20))


class Role(models.IntegerChoices):
    # Gaps leave room for roles in between; compare with >=.
    MEMBER = 10, "General Member"
    ADMIN = 30, "Organization Administrator"


class VerificationTier(models.TextChoices):
    DEFAULT = "default", "Default"
    ENTERPRISE = "enterprise", "Enterprise Verified"


class VerificationStatus(models.TextChoices):
    NOT_VERIFIED = "not_verified", "Not verified"
    PENDING = "pending", "Pending review"
    VERIFIED = "verified", "Verified"
    REJECTED = "rejected", "Rejected"


class OrganizationQuerySet(models.QuerySet["Organization"]):
    def lock(self, pk: int) -> Organization:
        """The organization row, locked until the transaction ends (call inside one).

        Every change that counts an organization's tier-limited resources or changes who
        administers it locks this row first, so two concurrent changes are serialized: the
        last-admin rule and the project/key limits cannot be raced.
        """
        return self.select_for_update(of=("self",)).get(pk=pk)


class Organization(models.Model):
    public_id = models.CharField(
        "organization ID", max_length=32, unique=True, default=new_org_public_id, editable=False
    )
    name = models.CharField(max_length=100)
    registered_email = models.EmailField(max_length=254)
    legal_address = models.TextField(blank=True, max_length=500)
    country = CountryField(blank=True)
    tax_number = models.CharField("tax / registration number", max_length=50, blank=True)
    website = models.URLField(blank=True, max_length=200)
    verification_tier = models.CharField(
        max_length=20, choices=VerificationTier.choices, default=VerificationTier.DEFAULT
    )
    verification_status = models.CharField(
        max_length=20, choices=VerificationStatus.choices, default=VerificationStatus.NOT_VERIFIED
    )
    # Staff overrides for deals made through Contact Sales (null = the tier's limit applies).
    projects_limit_override = models.PositiveIntegerField(null=True, blank=True)
    api_keys_limit_override = models.PositiveIntegerField(null=True, blank=True)
    # Rate tier: follows cumulative top-ups (kept by billing in the ledger's transaction) unless
    # staff pin a tier by name (one of settings.CONSOLE_RATE_TIERS).
    cumulative_topups = models.DecimalField(max_digits=18, decimal_places=6, default=0)
    rate_tier_override = models.CharField(max_length=20, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.public_id})"

    @property
    def information_complete(self) -> bool:
        return all([self.name, self.registered_email, self.legal_address, self.country, self.tax_number])

    @property
    def missing_information(self) -> list[str]:
        labels = {
            "legal_address": "legal address",
            "country": "country",
            "tax_number": "tax / registration number",
        }
        return [label for field, label in labels.items() if not getattr(self, field)]


class MembershipQuerySet(models.QuerySet["Membership"]):
    def admins(self) -> MembershipQuerySet:
        """Organization Administrators (the rule "org admin" on rows; `Membership.is_admin` on one)."""
        return self.filter(role__gte=Role.ADMIN)


class Membership(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.PositiveSmallIntegerField(choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)
    # Drives "the last used organization is remembered" across logins.
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="membership_unique_user_org")
        ]
        indexes = [models.Index(fields=["user", "-last_used_at"])]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization.public_id} as {self.get_role_display()}"

    @property
    def is_admin(self) -> bool:
        return is_admin_role(self.role)

    def is_demotion(self, role: int) -> bool:
        """Would `role` take this member's administrator rights away? (demotion handlers run then)"""
        return self.is_admin and not is_admin_role(role)


def is_admin_role(role: int) -> bool:
    """The one rule for "an Organization Administrator" on a role value."""
    return role >= Role.ADMIN


class AuditEvent(models.Model):
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_events"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=254, blank=True)  # kept if the user is deleted
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=254, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_label} at {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def changes(self) -> list[tuple[str, object, object]]:
        before = self.before or {}
        after = self.after or {}
        keys = sorted(set(before) | set(after))
        return [(k, before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k)]


class InvitationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    EXPIRED = "expired", "Expired"
    REVOKED = "revoked", "Revoked"


def invitation_status_q(status: str) -> Q:
    """The rows of one InvitationStatus, as a filter ("" = all): the database twin of `Invitation.status`."""
    now = timezone.now()
    open_ = Q(accepted_at=None, revoked_at=None)
    filters: dict[str, Q] = {
        InvitationStatus.PENDING: open_ & Q(expires_at__gt=now),
        InvitationStatus.EXPIRED: open_ & Q(expires_at__lte=now),
        InvitationStatus.ACCEPTED: Q(accepted_at__isnull=False),
        InvitationStatus.REVOKED: Q(accepted_at=None, revoked_at__isnull=False),
    }
    return filters.get(status, Q())


class InvitationQuerySet(models.QuerySet["Invitation"]):
    def with_status(self, status: str) -> InvitationQuerySet:
        return self.filter(invitation_status_q(status))

    def pending(self) -> InvitationQuerySet:
        """Neither accepted nor revoked, and not expired: the link still works."""
        return self.with_status(InvitationStatus.PENDING)


class Invitation(models.Model):
    """A dedicated, single-use link for one person. Only the token's SHA-256 digest is stored."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(max_length=254)
    role = models.PositiveSmallIntegerField(choices=Role.choices, default=Role.MEMBER)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    hint = models.CharField(max_length=16, editable=False)
    valid_days = models.PositiveSmallIntegerField(default=7)
    # Projects the invitee joins on acceptance: [{"project_id": "proj_…", "role": 10}], applied by
    # the projects app through orgs.hooks (orgs only stores them).
    project_grants = models.JSONField(default=list, blank=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField()
    send_count = models.PositiveSmallIntegerField(default=1)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "-created_at"])]

    def __str__(self) -> str:
        return f"Invitation of {self.email} to {self.organization.public_id}"

    @property
    def status(self) -> str:
        if self.accepted_at is not None:
            return InvitationStatus.ACCEPTED
        if self.revoked_at is not None:
            return InvitationStatus.REVOKED
        if self.expires_at <= timezone.now():
            return InvitationStatus.EXPIRED
        return InvitationStatus.PENDING

    def get_status_display(self) -> str:
        return InvitationStatus(self.status).label

    @property
    def is_pending(self) -> bool:
        return self.status == InvitationStatus.PENDING


class VerificationRequestStatus(models.TextChoices):
    PENDING = "pending", "Pending review"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


def verification_document_path(instance: VerificationRequest, filename: str) -> str:
    # A random name: the uploader's file name never reaches the file system. The service passes
    # `document<extension of the detected type>` as `filename` (orgs/services/verification.py), so
    # the suffix kept here is the checked type's, never the uploader's.
    suffix = PurePath(filename).suffix.lower()
    return f"verification/{secrets.token_hex(16)}{suffix}"


class VerificationRequest(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="verification_requests"
    )
    status = models.CharField(
        max_length=20, choices=VerificationRequestStatus.choices, default=VerificationRequestStatus.PENDING
    )
    legal_name = models.CharField(max_length=200)
    registration_number = models.CharField(max_length=50)
    country = CountryField()
    address = models.TextField(max_length=500)
    contact_name = models.CharField(max_length=150)
    contact_email = models.EmailField(max_length=254)
    contact_phone = models.CharField(max_length=40, blank=True)
    document = models.FileField(upload_to=verification_document_path, max_length=200)
    document_name = models.CharField("original file name", max_length=200)
    document_content_type = models.CharField(max_length=50)
    document_size = models.PositiveIntegerField()
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    submitted_at = models.DateTimeField(auto_now_add=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    rejection_reason = models.TextField(max_length=1000, blank=True)

    class Meta:
        ordering = ["-submitted_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization"],
                condition=Q(status="pending"),
                name="verification_one_open_request_per_org",
            )
        ]

    def __str__(self) -> str:
        return f"Verification of {self.legal_name} ({self.organization.public_id}), {self.get_status_display()}"


class SalesNeed(models.TextChoices):
    PROJECTS = "projects", "More projects"
    API_KEYS = "api_keys", "More API keys"
    RATE_LIMITS = "rate_limits", "Higher rate limits"
    OTHER = "other", "Something else"


class ContactSalesRequest(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="contact_sales_requests"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    name = models.CharField(max_length=150)
    email = models.EmailField(max_length=254)
    company = models.CharField(max_length=200)
    need = models.CharField(max_length=20, choices=SalesNeed.choices)
    message = models.TextField(max_length=5000)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    handled_at = models.DateTimeField(null=True, blank=True)
    staff_notes = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"])]
        verbose_name = "Contact Sales request"

    def __str__(self) -> str:
        return f"{self.get_need_display()} for {self.company} ({self.email})"
