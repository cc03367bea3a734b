"""Projects, project members and API keys; a project's budgets and TPM limit live on it."""

from __future__ import annotations

import secrets
import string
from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from orgs.models import Organization

_ALPHABET = string.ascii_lowercase + string.digits


def _random_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(20))


def new_project_public_id() -> str:
    return _random_id("proj_")


def new_key_public_id() -> str:
    return _random_id("key_")


class ProjectRole(models.IntegerChoices):
    # Gaps as with organization roles; compare with >=.
    MEMBER = 10, "General Project Member"
    ADMIN = 30, "Project Administrator"


class Project(models.Model):
    public_id = models.CharField(
        "project ID", max_length=32, unique=True, default=new_project_public_id, editable=False
    )
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=100)
    description = models.TextField(max_length=500, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    archived_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Budgets in the organization's currency for the calendar UTC day / month; null = no budget.
    monthly_budget = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    daily_budget = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    # Tokens per minute; null = only the organization's TPM applies. Effective = min(this, org TPM).
    tpm_limit = models.PositiveIntegerField(null=True, blank=True)
    # Requests per minute; null = only the organization's RPM applies. Effective = min(this, org RPM).
    rpm_limit = models.PositiveIntegerField(null=True, blank=True)
    # Consumption notifications: percentages of each budget (e.g. [50, 80, 100]).
    monthly_notify_percents = models.JSONField(default=list, blank=True)
    daily_notify_percents = models.JSONField(default=list, blank=True)
    notify_org_admins = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["organization", "archived_at"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.public_id})"

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None


class ProjectMembership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="project_memberships")
    role = models.PositiveSmallIntegerField(choices=ProjectRole.choices, default=ProjectRole.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="project_membership_unique_user_project")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.project.public_id} as {self.get_role_display()}"

    @property
    def is_admin(self) -> bool:
        return self.role >= ProjectRole.ADMIN


class RevocationReason(models.TextChoices):
    MANUAL = "manual", "Revoked"
    MEMBER_REMOVED = "member_removed", "Member removed"
    ROLE_CHANGED = "role_changed", "Owner's role changed"
    ROLLED = "rolled", "Replaced by a rolled key"


def key_status(*, revoked_at: datetime | None, expires_at: datetime | None) -> str:
    """"revoked" | "expired" | "active": the one rule, for instances and for plain column values
    (the gateway's single-query path, the usage breakdown by key)."""
    if revoked_at is not None:
        return "revoked"
    if expires_at is not None and expires_at <= timezone.now():
        return "expired"
    return "active"


class APIKeyQuerySet(models.QuerySet["APIKey"]):
    def unrevoked_unexpired(self) -> APIKeyQuerySet:
        """Keys that still open the gateway (unless their project is archived)."""
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
        )

    def counted_for_limit(self) -> APIKeyQuerySet:
        # A rolled key living out its overlap does not count: rolling replaces, it does not add.
        return self.unrevoked_unexpired().filter(replaced_by__isnull=True)


class APIKey(models.Model):
    """A secret for the gateway. Only its SHA-256 digest and a display hint are stored."""

    public_id = models.CharField("key ID", max_length=32, unique=True, default=new_key_public_id, editable=False)
    # organization is the project's, kept here so org-wide key limits and the gateway need no join.
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="api_keys")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_keys")
    name = models.CharField(max_length=100)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    hint = models.CharField(max_length=32, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_reason = models.CharField(max_length=32, choices=RevocationReason.choices, blank=True)
    replaced_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    objects = APIKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["project", "created_by"]),
            models.Index(fields=["organization"], condition=Q(revoked_at__isnull=True), name="apikey_org_unrevoked"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.hint})"

    @property
    def status(self) -> str:
        return key_status(revoked_at=self.revoked_at, expires_at=self.expires_at)

    @property
    def status_label(self) -> str:
        """What the key list says: active, expired, or revoked and why."""
        if self.revoked_at is not None:
            if self.revoked_reason in ("", RevocationReason.MANUAL):
                return "Revoked"
            return f"Revoked ({RevocationReason(self.revoked_reason).label.lower()})"
        if self.status == "expired":
            return "Expired (rolled)" if self.replaced_by_id else "Expired"
        return "Active"

    @property
    def masked_hint(self) -> str:
        """What other members see instead of the hint."""
        return f"{self.hint[: -4]}••••"
