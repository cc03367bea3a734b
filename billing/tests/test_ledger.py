"""The ledger: postings move the cached balance with them, references are idempotent, top-ups set the tier."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection

from billing.models import BillingAccount, LedgerEntry, LedgerKind
from billing.services.ledger import ledger_post
from console.errors import DomainError
from orgs.limits import organization_rate_limits
from orgs.models import AuditEvent, Organization
from orgs.tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db


def post(org, kind, amount, reference, memo="", actor=None):
    return ledger_post(organization=org, kind=kind, amount=Decimal(amount), reference=reference, memo=memo,
                       actor=actor)


def test_postings_carry_the_balance_after_them_and_move_the_cached_balance(org, org_admin):
    post(org, LedgerKind.TOPUP, "25.00", "pay-1", actor=org_admin)
    post(org, LedgerKind.ADJUSTMENT, "-5.50", "adj-1", memo="goodwill reversal")
    post(org, LedgerKind.REFUND, "4.50", "ref-1", memo="refund to card")
    rows = list(LedgerEntry.objects.filter(organization=org).order_by("id").values_list("kind", "amount",
                                                                                          "balance_after"))
    assert rows == [
        ("topup", Decimal("25"), Decimal("25")),
        ("adjustment", Decimal("-5.5"), Decimal("19.5")),
        ("refund", Decimal("-4.5"), Decimal("15")),
    ]
    assert BillingAccount.objects.get(organization=org).balance == Decimal("15")
    event = AuditEvent.objects.get(action="ledger.topup")
    assert (event.actor, event.before, event.after["balance"]) == (org_admin, {"balance": "0.000000"}, "25.000000")


def test_only_top_ups_count_towards_the_rate_tier(org):
    post(org, LedgerKind.TOPUP, "10", "pay-1")
    post(org, LedgerKind.ADJUSTMENT, "500", "voucher-1", memo="promotional voucher")
    org.refresh_from_db()
    assert org.cumulative_topups == Decimal("10")
    assert organization_rate_limits(org).tier == "Tier1"


def test_a_refund_takes_its_amount_off_the_rate_tier_but_never_below_zero(org):
    post(org, LedgerKind.TOPUP, "25", "pay-1")
    org.refresh_from_db()
    assert organization_rate_limits(org).tier == "Tier2"
    post(org, LedgerKind.REFUND, "15", "refund-1", memo="refund to card")
    org.refresh_from_db()
    assert org.cumulative_topups == Decimal("10") and organization_rate_limits(org).tier == "Tier1"
    post(org, LedgerKind.ADJUSTMENT, "100", "voucher-1", memo="promotional voucher")  # counts for no tier
    post(org, LedgerKind.REFUND, "50", "refund-2", memo="refund to card")
    org.refresh_from_db()
    assert org.cumulative_topups == Decimal("0") and organization_rate_limits(org).tier == "Tier0"


def test_the_same_reference_tops_up_once_and_says_so(org):
    first = post(org, LedgerKind.TOPUP, "25", "pay-1")
    again = post(org, LedgerKind.TOPUP, "25", "pay-1")
    assert (first.created, again.created) == (True, False)
    assert again.entry.pk == first.entry.pk
    assert BillingAccount.objects.get(organization=org).balance == Decimal("25")
    org.refresh_from_db()
    assert org.cumulative_topups == Decimal("25")


@pytest.mark.parametrize(
    ("kind", "amount", "other_org"),
    [(LedgerKind.TOPUP, "30", False), (LedgerKind.ADJUSTMENT, "25", False), (LedgerKind.TOPUP, "25", True)],
    ids=["other-amount", "other-kind", "other-organization"],
)
def test_a_reference_reused_with_other_content_is_refused(org, kind, amount, other_org):
    post(org, LedgerKind.TOPUP, "25", "pay-1")
    target = OrganizationFactory() if other_org else org
    with pytest.raises(DomainError) as exc:
        post(target, kind, amount, "pay-1", memo="x")
    assert "already used" in str(exc.value)
    assert LedgerEntry.objects.count() == 1


@pytest.mark.parametrize(
    ("kind", "amount", "reference", "memo", "field"),
    [
        (LedgerKind.TOPUP, "0", "r", "", "amount"),
        (LedgerKind.TOPUP, "-5", "r", "", "amount"),
        (LedgerKind.TOPUP, "1.0000001", "r", "", "amount"),
        (LedgerKind.TOPUP, "5", "", "", "reference"),
        (LedgerKind.TOPUP, "5", "  ", "", "reference"),
        (LedgerKind.REFUND, "-1", "r", "", "amount"),
        (LedgerKind.ADJUSTMENT, "0", "r", "why", "amount"),
        (LedgerKind.ADJUSTMENT, "5", "r", "", "memo"),
        (LedgerKind.USAGE, "5", "r", "", "kind"),
        (LedgerKind.REFUND, "11", "r", "", "amount"),  # more than the balance
    ],
)
def test_bad_postings_are_refused_and_change_nothing(org, kind, amount, reference, memo, field):
    post(org, LedgerKind.TOPUP, "10", "seed")
    with pytest.raises(DomainError) as exc:
        post(org, kind, amount, reference, memo=memo)
    assert field in exc.value.field_errors
    assert LedgerEntry.objects.count() == 1
    assert BillingAccount.objects.get(organization=org).balance == Decimal("10")


@pytest.mark.django_db(transaction=True)
def test_concurrent_top_ups_with_one_reference_credit_once_and_others_all_count():
    org = OrganizationFactory()
    barrier = threading.Barrier(8)
    results: list[bool] = []

    def worker(n: int) -> None:
        try:
            barrier.wait()
            reference = "same-payment" if n % 2 else f"payment-{n}"
            results.append(post(org, LedgerKind.TOPUP, "1.25", reference).created)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 3 + [True] * 5
    balances = list(LedgerEntry.objects.filter(organization=org).order_by("id").values_list("balance_after", flat=True))
    assert balances == [Decimal("1.25") * n for n in range(1, 6)]  # a clean chain: no lost update
    assert BillingAccount.objects.get(organization=org).balance == Decimal("6.25")
    assert Organization.objects.get(pk=org.pk).cumulative_topups == Decimal("6.25")
