"""Organizations, memberships and the audit trail."""

from __future__ import annotations

import secrets
import string

from django.conf import settings
from django.db import models
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


class Membership(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.PositiveSmallIntegerField(choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)
    # Drives "the last used organization is remembered" across logins.
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="membership_unique_user_org")
        ]
        indexes = [models.Index(fields=["user", "-last_used_at"])]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization.public_id} as {self.get_role_display()}"

    @property
    def is_admin(self) -> bool:
        return self.role >= Role.ADMIN


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
