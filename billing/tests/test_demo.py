"""`manage.py demo` leaves a console a newcomer can curl: prices, a balance, a project and a known key."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from billing.demo import DEMO_PRICES, demo_api_key
from billing.models import BillingAccount, LedgerEntry, LedgerKind, Price, UsageEvent, UsageRollup
from projects.models import APIKey, Project

pytestmark = pytest.mark.django_db


def test_demo_is_idempotent_and_its_key_works_against_the_gateway(gateway):
    out = StringIO()
    call_command("demo", stdout=out)
    assert demo_api_key() in out.getvalue()
    balance = BillingAccount.objects.get().balance
    call_command("demo", stdout=StringIO())
    assert Price.objects.count() == len(DEMO_PRICES)
    assert LedgerEntry.objects.filter(kind=LedgerKind.TOPUP).count() == 1
    assert Project.objects.filter(name="Demo project").count() == 1
    assert APIKey.objects.count() == 1
    assert UsageEvent.objects.count() == 36 and UsageRollup.objects.exists()
    assert BillingAccount.objects.get().balance == balance > 0
    response = gateway.authorize(demo_api_key())
    assert response.status_code == 200
    key_id = response.json()["key_id"]
    usage = gateway.usage([{"id": "readme-1", "key_id": key_id, "model": "acme-large", "input_tokens": 1200,
                            "output_tokens": 350, "occurred_at": timezone.now().isoformat()}])
    assert usage.json()["accepted"] == 1
