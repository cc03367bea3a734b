"""Invitation tokens and the visitor's pending invitation.

Token: "inv_" + secrets.token_urlsafe(32). Only its SHA-256 digest is stored, and only the digest is
kept in the visitor's session while they sign up or log in: the plaintext lives in the link alone.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from django.contrib.sessions.backends.base import SessionBase

INVITATION_TOKEN_PREFIX = "inv_"  # noqa: S105 -- a prefix, not a secret  # nosec B105
SESSION_PENDING = "orgs.invitation_digest"


@dataclass(frozen=True)
class NewToken:
    token: str
    digest: str
    hint: str


def invitation_token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_token_new() -> NewToken:
    token = INVITATION_TOKEN_PREFIX + secrets.token_urlsafe(32)
    return NewToken(token=token, digest=invitation_token_digest(token), hint=f"{INVITATION_TOKEN_PREFIX}…{token[-4:]}")


def mask_email(email: str) -> str:
    """a***@example.com: enough to recognise one's own address, not enough to harvest it."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def pending_digest(session: SessionBase) -> str | None:
    value = session.get(SESSION_PENDING)
    return value if isinstance(value, str) else None


def remember_pending(session: SessionBase, digest: str) -> None:
    session[SESSION_PENDING] = digest


def forget_pending(session: SessionBase) -> None:
    session.pop(SESSION_PENDING, None)
