"""`manage.py demo` leaves a console a newcomer can curl: prices, a balance, a project, a key, usage."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from billing.demo import DEMO_PRICES
from billing.models import BillingAccount, LedgerEntry, LedgerKind, Price, UsageEvent, UsageRollup
from projects.models import APIKey, Project

pytestmark = pytest.mark.django_db


def test_demo_is_idempotent_and_its_key_works_against_the_gateway(gateway):
    out = StringIO()
    call_command("demo", stdout=out)
    printed = re.search(r"API key:\s+(sk-\S+)", out.getvalue())
    assert printed, out.getvalue()
    assert "Gateway token: test-gateway-token" in out.getvalue()
    balance = BillingAccount.objects.get().balance
    again = StringIO()
    call_command("demo", stdout=again)
    assert "sk-" not in again.getvalue()  # a key's secret is shown once
    assert Price.objects.count() == len(DEMO_PRICES)
    assert LedgerEntry.objects.filter(kind=LedgerKind.TOPUP).count() == 1
    assert Project.objects.filter(name="Demo project").count() == 1
    assert APIKey.objects.count() == 1
    assert UsageEvent.objects.count() == 36 and UsageRollup.objects.exists()
    assert BillingAccount.objects.get().balance == balance > 0
    response = gateway.authorize(printed.group(1))
    assert response.status_code == 200
    usage = gateway.usage([{"id": "readme-1", "key_id": response.json()["key_id"], "model": "acme-large",
                            "input_tokens": 1200, "output_tokens": 350, "occurred_at": timezone.now().isoformat()}])
    assert usage.json()["accepted"] == 1
