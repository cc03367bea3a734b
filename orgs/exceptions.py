"""The one orgs-specific refusal; every other one is a plain `console.errors.DomainError`."""

from __future__ import annotations

from console.errors import DomainError


class InvitationInvalid(DomainError):
    """Unknown, expired, revoked or used: all look the same to the visitor, so tokens cannot be probed."""

    def __init__(self) -> None:
        super().__init__(
            "This invitation link is no longer valid — ask your administrator for a new one.", code="invalid"
        )
