"""The one domain error type: what forms and the JSON API get from it."""

from __future__ import annotations

from django import forms
from django.core.exceptions import PermissionDenied

from console.errors import DomainError, Forbidden, form_add_error


class _Form(forms.Form):
    email = forms.CharField(required=False)
    threshold = forms.CharField(required=False)


def _bound() -> _Form:
    form = _Form({"email": "a@example.com", "threshold": "1"})
    assert form.is_valid()
    return form


def test_a_plain_error_goes_on_the_form_and_into_json() -> None:
    error = DomainError("Only administrators can do this.", code="not_admin")
    form = _bound()
    form_add_error(form, error)
    assert form.non_field_errors() == ["Only administrators can do this."]
    assert error.as_json() == {"error": {"code": "not_admin", "message": "Only administrators can do this."}}


def test_a_field_error_goes_on_its_field() -> None:
    error = DomainError("Already a member.", code="already_member", field="email")
    form = _bound()
    form_add_error(form, error)
    assert form.errors == {"email": ["Already a member."]}
    assert error.as_json()["error"]["field"] == "email"


def test_several_field_errors_each_go_on_their_field_and_unknown_fields_on_the_form() -> None:
    error = DomainError(code="invalid", field_errors={"threshold": "Too high.", "kind": "Choose one."})
    assert error.message == "Too high. Choose one."
    form = _bound()
    form_add_error(form, error)
    assert form.errors["threshold"] == ["Too high."]
    assert form.non_field_errors() == ["Choose one."]


def test_a_code_can_be_mapped_to_a_field_by_the_view() -> None:
    form = _bound()
    form_add_error(form, DomainError("Taken.", code="already_invited"), fields={"already_invited": "email"})
    assert form.errors == {"email": ["Taken."]}


def test_forbidden_is_a_domain_error_and_a_403() -> None:
    error = Forbidden("You can only revoke your own keys.")
    assert isinstance(error, DomainError)
    assert isinstance(error, PermissionDenied)
    assert error.code == "forbidden"
