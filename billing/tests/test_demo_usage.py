from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from billing.models import BalanceAlert
from console.models import OutboxEmail


@pytest.mark.django_db
def test_demo_usage_crosses_the_threshold_once(smtp, django_capture_on_commit_callbacks):
    call_command("demo", stdout=io.StringIO())
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("demo_usage", stdout=out)
    assert "alert threshold $5.00" in out.getvalue()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("demo_usage", stdout=io.StringIO())  # already below: one more call, no new alert
    alerts = [m for m in smtp.messages() if m.subject.startswith("Low balance: Acme Demo")]
    assert len(alerts) == 1
    assert OutboxEmail.objects.filter(template="balance_alert").count() == 1
    assert BalanceAlert.objects.get().crossings == 1
