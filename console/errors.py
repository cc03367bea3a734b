"""The one error type every app's services raise when a rule says no.

A `DomainError` carries a machine-readable `code` (for code, the JSON API and tests), a `message`
written for the person who asked, and optionally the form `field` it is about. A refusal that
concerns several fields at once carries them in `field_errors` ({field: message}); `message` is
then their text joined. Nothing was changed when one is raised.

Interfaces map it, they never parse the message:
- forms: `form_add_error(form, error)` puts each message on its field (or on the form);
- the JSON API: `error.as_json()` is `{"error": {"code", "message"[, "field"]}}`;
- `Forbidden` is also Django's `PermissionDenied`, so one that no view catches is still a 403.

`console` depends on no app, so every app may import this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied

if TYPE_CHECKING:
    from django import forms


class DomainError(Exception):
    """A refused change: `message` for the person who asked, `code` for code and tests."""

    def __init__(
        self,
        message: str = "",
        *,
        code: str,
        field: str | None = None,
        field_errors: Mapping[str, str] | None = None,
    ) -> None:
        self.field_errors: dict[str, str] = dict(field_errors or {})
        if field is not None and message and field not in self.field_errors:
            self.field_errors = {field: message, **self.field_errors}
        if not message:
            message = " ".join(self.field_errors.values())
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field if field is not None else next(iter(self.field_errors), None)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"

    def as_json(self) -> dict[str, Any]:
        """The JSON API's error body."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return {"error": body}


class Forbidden(DomainError, PermissionDenied):
    """The actor's role does not allow the change (re-checked by the service). Uncaught, a 403."""

    def __init__(self, message: str = "Your role does not allow this.", *, code: str = "forbidden") -> None:
        super().__init__(message, code=code)


def form_add_error(form: forms.BaseForm, error: DomainError, *, fields: Mapping[str, str] | None = None) -> None:
    """Show a refusal on the form: each message on its field when the form has it, else on the form.

    `fields` maps error codes to form fields, for services that do not know the form's names.
    """
    by_field: list[tuple[str | None, str]] = [*error.field_errors.items()] or [(None, error.message)]
    for name, message in by_field:
        target = (fields or {}).get(error.code, name)
        form.add_error(target if target in form.fields else None, message)
