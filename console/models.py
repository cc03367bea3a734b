"""Accounts (email is the login; allauth handles passwords, verification, MFA) and the email outbox."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create(self, email: str, password: str | None, **extra: Any) -> User:
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.update(is_staff=True, is_superuser=True)
        return self._create(email, password, **extra)


class User(AbstractUser):
    username = None  # type: ignore[assignment]
    first_name = None  # type: ignore[assignment]
    last_name = None  # type: ignore[assignment]
    email = models.EmailField("email address", max_length=254, unique=True)
    name = models.CharField("full name", max_length=150, blank=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = []  # type: ignore[misc]

    objects = UserManager()  # type: ignore[misc, assignment]

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="user_email_ci_unique")]

    def __str__(self) -> str:
        return self.email

    @property
    def display_name(self) -> str:
        return self.name or self.email.split("@")[0]

    def get_full_name(self) -> str:
        return self.name or self.email

    def get_short_name(self) -> str:
        return self.display_name


class OutboxEmail(models.Model):
    """One email to send, exactly once: written in the transaction that decided to send it.

    The task ``console.email_send`` renders ``templates/email/<template>/`` with ``context`` and
    sends it. There is no persisted "sending" state: the row lock held across the SMTP call is it,
    and the sent mark commits with that lock, so two workers can never both send one row.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"  # not delivered yet; the send task (or a retry) will try
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"  # gave up: permanent error or attempts exhausted

    unique_key = models.CharField(max_length=255, unique=True)
    to = models.JSONField("recipients", default=list)
    template = models.CharField(max_length=100)
    # JSON (Decimals and dates come back as strings): format values before enqueuing.
    context = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    # Context keys holding secrets (links with tokens); blanked once the email is sent.
    sensitive_keys = models.JSONField(default=list, blank=True)
    # Files rendered when the email is sent, not stored: [{"kind": a registered kind, "ref": an id}]
    # (console.services.email_attachment_register).
    attachments = models.JSONField(default=list, blank=True)
    # An organization's public id ("org-…"), a plain string so `console` depends on no app.
    organization_ref = models.CharField("organization", max_length=32, blank=True, db_index=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # Attempts in the current cycle (a manual retry of a failed email starts a new cycle).
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "outbox email"
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="outbox_status_next_idx")]

    def __str__(self) -> str:
        return f"{self.template} to {', '.join(self.to)}"
