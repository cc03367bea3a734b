"""Projects, project members and API keys; a project's budgets and TPM limit live on it."""

from __future__ import annotations

import secrets
import string
from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from console.errors import DomainError
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


MAX_NOTIFY_THRESHOLDS = 10


def notify_percents_clean(values: Iterable[int]) -> list[int]:
    """The rule for consumption-notification thresholds: sorted, distinct whole percentages 1-100,
    at most ten. The form, the service and the stored value (`Project.notify_percents`) all use it."""
    percents = sorted(set(values))
    for value in percents:
        if not 1 <= value <= 100:
            raise DomainError(f"{value} % is not between 1 and 100.", code="invalid_notify_percents")
    if len(percents) > MAX_NOTIFY_THRESHOLDS:
        raise DomainError(f"Use at most {MAX_NOTIFY_THRESHOLDS} thresholds.", code="invalid_notify_percents")
    return percents


class ProjectQuerySet(models.QuerySet["Project"]):
    def lock(self, pk: int) -> Project:
        """The project row (with its organization, unlocked), locked until the transaction ends."""
        return self.select_for_update(of=("self",)).select_related("organization").get(pk=pk)


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

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["organization", "archived_at"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.public_id})"

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None

    def notify_percents(self, *, daily: bool) -> list[int]:
        """The thresholds to notify at for the day's or the month's budget, as the rule keeps them
        (a stored value the rule no longer accepts notifies at nothing rather than failing)."""
        stored = self.daily_notify_percents if daily else self.monthly_notify_percents
        if not isinstance(stored, list) or not all(isinstance(p, int) for p in stored):
            return []
        try:
            return notify_percents_clean(stored)
        except DomainError:
            return []


class ProjectMembershipQuerySet(models.QuerySet["ProjectMembership"]):
    def admins(self) -> ProjectMembershipQuerySet:
        """Project Administrators (the rule on rows; `ProjectMembership.is_admin` on one)."""
        return self.filter(role__gte=ProjectRole.ADMIN)


class ProjectMembership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="project_memberships")
    role = models.PositiveSmallIntegerField(choices=ProjectRole.choices, default=ProjectRole.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ProjectMembershipQuerySet.as_manager()

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


class KeyStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    EXPIRED = "expired", "Expired"
    REVOKED = "revoked", "Revoked"


def key_status(*, revoked_at: datetime | None, expires_at: datetime | None) -> KeyStatus:
    """Revoked, expired or active: the one rule, for instances and for plain column values
    (the gateway's single-query path, the usage breakdown by key)."""
    if revoked_at is not None:
        return KeyStatus.REVOKED
    if expires_at is not None and expires_at <= timezone.now():
        return KeyStatus.EXPIRED
    return KeyStatus.ACTIVE


class APIKeyQuerySet(models.QuerySet["APIKey"]):
    def unrevoked(self) -> APIKeyQuerySet:
        """Keys nobody revoked yet (expired ones included): what a revocation acts on."""
        return self.filter(revoked_at__isnull=True)

    def active(self) -> APIKeyQuerySet:
        """Keys that still open the gateway (unless their project is archived): `APIKey.is_active` in SQL."""
        return self.unrevoked().filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))

    def counted_for_limit(self) -> APIKeyQuerySet:
        # A rolled key living out its overlap does not count: rolling replaces, it does not add.
        return self.active().filter(replaced_by__isnull=True)


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
    def status(self) -> KeyStatus:
        return key_status(revoked_at=self.revoked_at, expires_at=self.expires_at)

    @property
    def is_active(self) -> bool:
        """Unrevoked and unexpired (the gateway also refuses it while its project is archived)."""
        return self.status == KeyStatus.ACTIVE

    @property
    def is_rollable(self) -> bool:
        """An active key that has not been replaced yet (who may roll it: `permissions.may_roll_key`)."""
        return self.is_active and self.replaced_by_id is None

    @property
    def status_label(self) -> str:
        """What the key list says: active, expired, or revoked and why."""
        if self.revoked_at is not None:
            if self.revoked_reason in ("", RevocationReason.MANUAL):
                return "Revoked"
            return f"Revoked ({RevocationReason(self.revoked_reason).label.lower()})"
        if self.status == KeyStatus.EXPIRED:
            return "Expired (rolled)" if self.replaced_by_id else "Expired"
        return "Active"

    @property
    def masked_hint(self) -> str:
        """What other members see instead of the hint."""
        return f"{self.hint[: -4]}••••"
