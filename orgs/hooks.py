"""Extension points that let apps downstream of `orgs` join its transactions.

`orgs` must not import `projects` or `billing` (dependencies point one way), yet removing a member
from an organization must, in the same transaction, remove them from every project and revoke
their API keys. So `projects` registers its handlers here from its AppConfig.ready(), and the
`orgs` services call them. This is an explicit registry, not a signal: the call order and the
transaction are visible in the service that runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from console.models import User

    from .models import Membership


@dataclass
class RemovalImpact:
    """What removing (or demoting) a member will do, shown before the admin confirms."""

    projects: int = 0
    api_keys: int = 0
    api_keys_last_used_at: datetime | None = None
    notes: list[str] = field(default_factory=list)

    def merge(self, other: RemovalImpact) -> RemovalImpact:
        last = [d for d in (self.api_keys_last_used_at, other.api_keys_last_used_at) if d is not None]
        return RemovalImpact(
            projects=self.projects + other.projects,
            api_keys=self.api_keys + other.api_keys,
            api_keys_last_used_at=max(last) if last else None,
            notes=[*self.notes, *other.notes],
        )


# handler(membership=..., actor=...) runs inside the removal's transaction, before the
# membership row is deleted; it must lock what it changes and record its own AuditEvents.
MemberRemovalHandler = Callable[..., None]
# provider(membership=...) -> RemovalImpact; read-only.
RemovalImpactProvider = Callable[..., RemovalImpact]

_removal_handlers: list[MemberRemovalHandler] = []
_impact_providers: list[RemovalImpactProvider] = []


def _add(registry: list[Any], item: Any) -> None:
    # ready() may run more than once (tests, reloads): register each callable once.
    if item not in registry:
        registry.append(item)


def _merged_impact(providers: list[RemovalImpactProvider], membership: Membership) -> RemovalImpact:
    impact = RemovalImpact()
    for provider in providers:
        impact = impact.merge(provider(membership=membership))
    return impact


def register_member_removal(*, handler: MemberRemovalHandler, impact: RemovalImpactProvider) -> None:
    _add(_removal_handlers, handler)
    _add(_impact_providers, impact)


def run_member_removal_handlers(*, membership: Membership, actor: User | None) -> None:
    for handler in _removal_handlers:
        handler(membership=membership, actor=actor)


def member_removal_impact(*, membership: Membership) -> RemovalImpact:
    return _merged_impact(_impact_providers, membership)


# An Organization Administrator becoming a General Member loses the project-admin rights that came
# with the role: handler(membership=..., actor=...) runs inside the role change's transaction, with
# the organization and membership rows locked and the role not yet saved; it must lock what it
# changes and record its own AuditEvents. impact(membership=...) -> RemovalImpact; read-only.
_demotion_handlers: list[MemberRemovalHandler] = []
_demotion_impact_providers: list[RemovalImpactProvider] = []


def register_member_demotion(*, handler: MemberRemovalHandler, impact: RemovalImpactProvider) -> None:
    _add(_demotion_handlers, handler)
    _add(_demotion_impact_providers, impact)


def run_member_demotion_handlers(*, membership: Membership, actor: User | None) -> None:
    for handler in _demotion_handlers:
        handler(membership=membership, actor=actor)


def member_demotion_impact(*, membership: Membership) -> RemovalImpact:
    return _merged_impact(_demotion_impact_providers, membership)


# Usage of tier-limited resources ("projects", "api_keys"), counted by the app that owns them:
# counter(organization=...) -> int. The Verification page shows used / allowed through these.
UsageCounter = Callable[..., int]
_usage_counters: dict[str, UsageCounter] = {}


def register_usage_counter(resource: str, counter: UsageCounter) -> None:
    _usage_counters[resource] = counter


def resource_usage(*, organization: object, resource: str) -> int:
    counter = _usage_counters.get(resource)
    return counter(organization=organization) if counter else 0


# handler(invitation=..., membership=...) runs inside invitation acceptance's transaction, after
# the membership exists (the projects app applies an invitation's pre-assigned projects here).
InvitationAcceptedHandler = Callable[..., None]
_invitation_accepted_handlers: list[InvitationAcceptedHandler] = []


def register_invitation_accepted(handler: InvitationAcceptedHandler) -> None:
    _add(_invitation_accepted_handlers, handler)


def run_invitation_accepted_handlers(*, invitation: object, membership: Membership) -> None:
    for handler in _invitation_accepted_handlers:
        handler(invitation=invitation, membership=membership)


# The projects an invitation may pre-assign: provider(organization=...) -> [(project public id, name)],
# plus the project roles [(value, label)] an invitee may get in them (the first is the default).
# Registered by the projects app; without it the invite form offers no projects.
InvitationProjectChoicesProvider = Callable[..., list[tuple[str, str]]]
_invitation_project_choices: list[InvitationProjectChoicesProvider] = []
_invitation_project_roles: list[tuple[int, str]] = []


def register_invitation_project_choices(
    provider: InvitationProjectChoicesProvider, *, roles: list[tuple[int, str]]
) -> None:
    _invitation_project_choices[:] = [provider]
    _invitation_project_roles[:] = roles


def invitation_project_choices(*, organization: object) -> list[tuple[str, str]]:
    choices: list[tuple[str, str]] = []
    for provider in _invitation_project_choices:
        choices.extend(provider(organization=organization))
    return choices


def invitation_project_roles() -> list[tuple[int, str]]:
    return list(_invitation_project_roles)
