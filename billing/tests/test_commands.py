"""The staff commands: price_set, balance_topup, usage_aggregate, usage_reconcile."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from billing.api import usage_report
from billing.models import BillingAccount, LedgerEntry, LedgerKind, Price, UsageRollup
from billing.tests.factories import PriceFactory, fund, make_api_key, usage_event

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_price_set_adds_a_price_and_keeps_history():
    run("price_set", "acme-large", "--input", "1.20", "--output", "4.80", "--effective-from", "2025-01-01T00:00:00Z")
    output = run("price_set", "acme-large", "--input", "1.00", "--output", "4.00")
    assert "acme-large: $1.00 input / $4.00 output per 1M tokens" in output
    assert list(Price.objects.filter(model="acme-large").values_list("input_per_mtok", flat=True)) == [
        Decimal("1.00"), Decimal("1.20"),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "abc", "--output", "1"], "is not a number"),
        (["--input", "-1", "--output", "1"], "at least 0"),
        (["--input", "1", "--output", "1", "--effective-from", "soon"], "ISO 8601"),
    ],
)
def test_price_set_refuses_bad_input(args, message):
    with pytest.raises(CommandError, match=message):
        run("price_set", "acme-large", *args)
    assert not Price.objects.exists()


def test_price_set_twice_for_the_same_moment_is_refused():
    run("price_set", "m", "--input", "1", "--output", "1", "--effective-from", "2025-01-01T00:00:00Z")
    with pytest.raises(CommandError, match="already has a price"):
        run("price_set", "m", "--input", "2", "--output", "2", "--effective-from", "2025-01-01T00:00:00Z")


def test_balance_topup_tops_up_once_per_reference_and_says_so(org):
    output = run("balance_topup", org.public_id, "25.00", "--reference", "stripe-pi-1", "--memo", "Card payment")
    assert "balance is now $25.00" in output
    again = run("balance_topup", org.public_id, "25.00", "--reference", "stripe-pi-1")
    assert "was already topped up" in again and "nothing changed" in again
    assert BillingAccount.objects.get(organization=org).balance == Decimal("25")
    assert LedgerEntry.objects.get(organization=org).memo == "Card payment"


@pytest.mark.parametrize(
    ("org_id", "amount", "message"),
    [("org-nope", "5", "No organization"), (None, "five", "is not a number"), (None, "-5", "greater than zero")],
)
def test_balance_topup_refuses_bad_input(org, org_id, amount, message):
    with pytest.raises(CommandError, match=message):
        run("balance_topup", org_id or org.public_id, amount, "--reference", "r-1")
    assert not LedgerEntry.objects.exists()


def test_usage_aggregate_command_folds_and_reports():
    PriceFactory(model="m")
    _raw, key = make_api_key()
    usage_report([usage_event(f"e{i}", key, "m") for i in range(3)])
    assert "Folded 3 events from 1 batches into 1 rollups." in run("usage_aggregate")
    assert "Folded 0 events" in run("usage_aggregate")
    assert UsageRollup.objects.get().requests == 3


def test_usage_reconcile_command_passes_and_fails_loudly():
    PriceFactory(model="m")
    _raw, key = make_api_key()
    fund(key.organization, "5")
    day = timezone.now().astimezone(UTC).date()
    usage_report([usage_event("e1", key, "m", occurred_at=datetime.combine(day, datetime.min.time(), UTC)
                                     + timedelta(hours=1))])
    assert "agree for 1 organization" in run("usage_reconcile", "--date", day.isoformat())
    charge = LedgerEntry.objects.get(kind=LedgerKind.USAGE)
    LedgerEntry.objects.filter(pk=charge.pk).update(amount=charge.amount - Decimal("0.000001"))
    out = StringIO()
    with pytest.raises(CommandError, match="1 organization"):
        call_command("usage_reconcile", "--date", day.isoformat(), stdout=out)
    assert f"{key.organization.public_id}: charged 0.002001 but events cost 0.002000" in out.getvalue()
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        run("usage_reconcile", "--date", "yesterday")
