"""API keys: each member creates their own; revoke, roll (replace with an overlap), expire.

The plaintext of a new key exists only in the returned `CreatedKey`; only its digest and a hint
are stored. Creating a key counts the organization's keys under its row lock (the tier limit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from console.errors import DomainError, Forbidden
from console.models import User
from orgs.audit import audit_record, snapshot
from orgs.limits import LimitReached
from orgs.models import Organization

from ..keys import generate_raw_key, key_digest, key_hint
from ..models import APIKey, APIKeyQuerySet, Project, ProjectRole, RevocationReason
from ..permissions import may_revoke_any_key, may_revoke_key, may_roll_key, require_project_role
from ..selectors import api_key_limit
from .projects import refuse_if_archived

ROLL_OVERLAP_MIN = timedelta(hours=1)
ROLL_OVERLAP_MAX = timedelta(days=7)


@dataclass(frozen=True)
class CreatedKey:
    """A new key and its plaintext, which exists only in this object: show it once, never store it."""

    key: APIKey
    raw_key: str = field(repr=False)


def revoke_keys(*, keys: APIKeyQuerySet, actor: User | None, reason: str) -> int:
    """Revoke the given keys (locked first) with one audit event each; returns how many."""
    now = timezone.now()
    revoked = 0
    for key in keys.unrevoked().select_related("organization").select_for_update(of=("self",)):
        before = snapshot(key, ("revoked_at", "revoked_reason"))
        key.revoked_at = now
        key.revoked_by = actor
        key.revoked_reason = reason
        key.save(update_fields=["revoked_at", "revoked_by", "revoked_reason"])
        audit_record(
            actor=actor,
            organization=key.organization,
            action="api_key.revoke",
            target=key,
            before=before,
            after=snapshot(key, ("revoked_at", "revoked_reason")),
        )
        revoked += 1
    return revoked


def _issue_key(*, project: Project, owner: User, name: str, expires_at: datetime | None) -> CreatedKey:
    raw_key = generate_raw_key()
    key = APIKey.objects.create(
        organization_id=project.organization_id,
        project=project,
        created_by=owner,
        name=name.strip(),
        digest=key_digest(raw_key),
        hint=key_hint(raw_key),
        expires_at=expires_at,
    )
    audit_record(
        actor=owner,
        organization=project.organization,
        action="api_key.create",
        target=key,
        after=snapshot(key, ("name", "hint", "expires_at")),
    )
    return CreatedKey(key=key, raw_key=raw_key)


def _refuse_past_expiry(expires_at: datetime | None) -> None:
    if expires_at is not None and expires_at <= timezone.now():
        raise DomainError("Choose an expiry date in the future.", code="invalid_expiry")


@transaction.atomic
def api_key_create(*, project: Project, actor: User, name: str, expires_at: datetime | None = None) -> CreatedKey:
    """Create the actor's own key in the project, within the org's key limit.

    The plaintext is returned once in CreatedKey and stored nowhere; only digest and hint are kept.
    """
    organization = Organization.objects.lock(project.organization_id)
    require_project_role(actor=actor, project=project, min_role=ProjectRole.MEMBER)
    project = Project.objects.lock(project.pk)
    refuse_if_archived(project)
    _refuse_past_expiry(expires_at)
    if not name.strip():
        raise DomainError("Give the key a name.", code="name_required")
    decision = api_key_limit(organization=organization)
    if not decision.allowed:
        raise LimitReached(decision)
    return _issue_key(project=project, owner=actor, name=name, expires_at=expires_at)


@transaction.atomic
def api_key_revoke(*, key: APIKey, actor: User) -> APIKey:
    """Revoke a key: its owner, a project admin, an org admin or platform staff (from the staff admin)
    may. Revoking twice changes nothing."""
    if not may_revoke_any_key(actor):
        role = require_project_role(actor=actor, project=key.project, min_role=ProjectRole.MEMBER)
        if not may_revoke_key(role=role, owner_id=key.created_by_id, user_id=actor.pk):
            raise Forbidden("You can only revoke your own keys.")
    revoke_keys(keys=APIKey.objects.filter(pk=key.pk), actor=actor, reason=RevocationReason.MANUAL)
    return APIKey.objects.select_related("project", "created_by", "revoked_by").get(pk=key.pk)


def _api_key_expire(*, key: APIKey, actor: User, at: datetime) -> APIKey:
    """Bring a key's expiry forward to `at` (never later than it already was): a rolled key's end.
    Called by api_key_roll, inside its transaction, after it re-checked the actor."""
    if key.expires_at is not None and key.expires_at <= at:
        return key
    before = snapshot(key, ("expires_at",))
    key.expires_at = at
    key.save(update_fields=["expires_at"])
    audit_record(
        actor=actor,
        organization=key.project.organization,
        action="api_key.expire",
        target=key,
        before=before,
        after=snapshot(key, ("expires_at",)),
    )
    return key


@transaction.atomic
def api_key_roll(
    *, key: APIKey, actor: User, overlap: timedelta, expires_at: datetime | None = None
) -> CreatedKey:
    """Replace the actor's own active key: a new key now, the old one keeps working for `overlap`
    (1 hour to 7 days) and then expires. The old key stops counting against the limit at once."""
    Organization.objects.lock(key.organization_id)
    require_project_role(actor=actor, project=key.project, min_role=ProjectRole.MEMBER)
    if not ROLL_OVERLAP_MIN <= overlap <= ROLL_OVERLAP_MAX:
        raise DomainError("Choose an overlap between 1 hour and 7 days.", code="invalid_overlap")
    _refuse_past_expiry(expires_at)
    project = Project.objects.lock(key.project_id)
    refuse_if_archived(project)
    old = APIKey.objects.select_for_update().get(pk=key.pk)
    old.project = project
    if not may_roll_key(owner_id=old.created_by_id, user_id=actor.pk):
        raise Forbidden("You can only roll your own keys.")
    if not old.is_rollable:
        raise DomainError("Only an active key that has not been rolled yet can be rolled.", code="not_rollable")
    created = _issue_key(project=project, owner=actor, name=old.name, expires_at=expires_at)
    old.replaced_by = created.key
    old.save(update_fields=["replaced_by"])
    _api_key_expire(key=old, actor=actor, at=timezone.now() + overlap)
    return created
