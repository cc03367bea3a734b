"""API key secrets: format, checksum, digest, and authentication for the gateway.

Format: <prefix><body><checksum>, body = secrets.token_urlsafe(32) (43 chars), checksum = the first
6 hex characters of SHA-256(prefix + body). The checksum lets a mistyped or made-up key be refused
without touching the database. Only the SHA-256 digest of the whole key is stored (high-entropy
random secrets need no salt or slow hash) plus a display hint (prefix + last 4 characters).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from .models import APIKey, KeyStatus, key_status

BODY_LENGTH = 43  # len(secrets.token_urlsafe(32))
CHECKSUM_LENGTH = 6
TOUCH_INTERVAL = timedelta(seconds=60)


def _checksum(prefix: str, body: str) -> str:
    return hashlib.sha256(f"{prefix}{body}".encode()).hexdigest()[:CHECKSUM_LENGTH]


def generate_raw_key() -> str:
    prefix = settings.CONSOLE_API_KEY_PREFIX
    body = secrets.token_urlsafe(32)
    return f"{prefix}{body}{_checksum(prefix, body)}"


def key_digest(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def key_hint(raw_key: str) -> str:
    return f"{settings.CONSOLE_API_KEY_PREFIX}…{raw_key[-4:]}"


def is_well_formed(raw_key: str) -> bool:
    """Prefix, length and checksum: no database query."""
    prefix = settings.CONSOLE_API_KEY_PREFIX
    if not raw_key.startswith(prefix) or len(raw_key) != len(prefix) + BODY_LENGTH + CHECKSUM_LENGTH:
        return False
    body = raw_key[len(prefix) : len(prefix) + BODY_LENGTH]
    return hmac.compare_digest(raw_key[-CHECKSUM_LENGTH:], _checksum(prefix, body))


@dataclass(frozen=True)
class KeyAuthResult:
    key: APIKey | None  # with .project and .organization loaded; None on failure
    error: str | None  # None, or "malformed" | "unknown" | "revoked" | "expired" | "project_archived"


def api_key_authenticate(raw_key: str) -> KeyAuthResult:
    """Checksum first, then one indexed lookup by digest. Never cached: a revoked key fails at once."""
    if not is_well_formed(raw_key):
        return KeyAuthResult(key=None, error="malformed")
    key = (
        APIKey.objects.select_related("project", "organization")
        .filter(digest=key_digest(raw_key))
        .first()
    )
    if key is None:
        return KeyAuthResult(key=None, error="unknown")
    return KeyAuthResult(key=key, error=api_key_state_error(key))


def api_key_state_error(key: APIKey) -> str | None:
    """Why a found key may not be used: "revoked" | "expired" | "project_archived", or None."""
    return key_state_error(
        revoked_at=key.revoked_at, expires_at=key.expires_at, project_archived_at=key.project.archived_at
    )


def key_state_error(
    *, revoked_at: datetime | None, expires_at: datetime | None, project_archived_at: datetime | None
) -> str | None:
    """The rule behind api_key_state_error, on plain values: the gateway's single-query fast path
    (billing.selectors) reads the same columns without building model instances."""
    status = key_status(revoked_at=revoked_at, expires_at=expires_at)
    if status != KeyStatus.ACTIVE:
        return str(status.value)
    if project_archived_at is not None:
        return "project_archived"
    return None


class UsedKey(Protocol):
    """A key as api_key_touch needs it: an APIKey, or the gateway's plain GatewayKey."""

    pk: Any
    last_used_at: datetime | None


def api_key_touch(key: UsedKey) -> None:
    """Record use at most about once a minute per key: a conditional UPDATE, no write per call."""
    now = timezone.now()
    if key.last_used_at is not None and now - key.last_used_at < TOUCH_INTERVAL:
        return
    APIKey.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - TOUCH_INTERVAL), pk=key.pk).update(
        last_used_at=now
    )
    key.last_used_at = now
