"""Numbers people type are ASCII digits: other scripts' digits, underscores, exponents, NaN and
Infinity get the field's error instead of being read as a number (Django's int()/Decimal() take them)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.forms import BalanceAlertForm
from console.fields import AsciiDecimalField, AsciiIntegerField
from orgs.forms import InvitationForm
from projects.forms import ProjectLimitsForm

NOT_ASCII = ["\u0665\u0660", "\uff15\uff10", "1_0", "1e3", "NaN", "Infinity", "\u00b2", "5\u0660"]


@pytest.mark.parametrize("text", NOT_ASCII)
def test_fields_refuse_what_is_not_ascii_digits(text):
    for field in (AsciiIntegerField(), AsciiDecimalField()):
        with pytest.raises(Exception) as error:
            field.clean(text)
        assert "Enter a" in str(error.value)


@pytest.mark.parametrize(("text", "integer", "decimal"), [
    ("50", 50, Decimal("50")), (" 7 ", 7, Decimal("7")), ("-3", -3, Decimal("-3")), ("12.5", None, Decimal("12.5")),
])
def test_fields_read_ascii_numbers(text, integer, decimal):
    if integer is not None:
        assert AsciiIntegerField().clean(text) == integer
    assert AsciiDecimalField().clean(text) == decimal


@pytest.mark.parametrize("text", ["\u0661\u0660", "\uff11\uff10"])
def test_the_forms_people_type_numbers_in_refuse_other_digits(text):
    limits = ProjectLimitsForm({"daily_budget": text, "monthly_budget": "", "tpm_limit": text, "rpm_limit": text,
                                "daily_notify_percents": "", "monthly_notify_percents": ""})
    assert not limits.is_valid()
    assert {"daily_budget", "tpm_limit", "rpm_limit"} <= set(limits.errors)
    alert = BalanceAlertForm({"enabled": "on", "threshold": text, "extra_recipients": ""})
    assert not alert.is_valid() and "threshold" in alert.errors
    with pytest.raises(Exception, match="whole number"):
        InvitationForm.base_fields["valid_days"].clean(text)
