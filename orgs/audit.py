"""The audit trail's one writer: `audit_record`, and `snapshot` for its before/after.

Every app records its changes here (orgs, projects, billing), in the transaction of the change.
The model is `orgs.models.AuditEvent`; the organization's Audit log page reads it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Model

from console.context import client_ip
from console.models import User

from .models import AuditEvent, Organization


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
