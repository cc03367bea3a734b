"""What services raise when a rule says no. Views turn these into form errors or messages."""

from __future__ import annotations


class OrgError(Exception):
    """A refused change: `message` is written for the person who asked, `code` for code and tests."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class InvitationInvalid(OrgError):
    """Unknown, expired, revoked or used: all look the same to the visitor, so tokens cannot be probed."""

    def __init__(self) -> None:
        super().__init__(
            "This invitation link is no longer valid — ask your administrator for a new one.", code="invalid"
        )
