"""The ledger: append-only rows that move an organization's balance, in the same transaction,
under the billing account's row lock (the lock order: billing accounts by organization id)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import DecimalField, F, Value
from django.db.models.functions import Greatest

from console.errors import DomainError
from console.models import User
from orgs.audit import audit_record
from orgs.models import Organization
from orgs.permissions import require_staff

from ..models import BillingAccount, LedgerEntry, LedgerKind
from ..money import format_money, quantize_micro
from .alerts import schedule_balance_alert_check
from .retry import atomic_with_retry


def lock_accounts(organization_ids: Iterable[int]) -> dict[int, BillingAccount]:
    """Lock (creating when missing) the billing accounts, in organization id order."""
    ids = sorted(set(organization_ids))

    def select() -> dict[int, BillingAccount]:
        rows = BillingAccount.objects.select_for_update().filter(organization_id__in=ids).order_by("organization_id")
        return {account.organization_id: account for account in rows}

    accounts = select()
    missing = [i for i in ids if i not in accounts]
    if missing:
        BillingAccount.objects.bulk_create(
            [BillingAccount(organization_id=i) for i in missing], ignore_conflicts=True
        )
        accounts = select()
    return accounts


def cumulative_topups_lower(*, organization_id: int, amount: Decimal) -> None:
    """Money paid back (a refund) no longer counts towards the rate tier: the cumulative top-ups go
    down by it, never below zero (a refund of money that came by adjustment never counted). The
    gateway reads the column on every call, so the next call sees the lower tier."""
    Organization.objects.filter(pk=organization_id).update(
        cumulative_topups=Greatest(F("cumulative_topups") - amount, Value(Decimal(0)), output_field=DecimalField())
    )


@dataclass(frozen=True)
class LedgerPostResult:
    entry: LedgerEntry
    created: bool  # False: the reference was already posted with the same content; nothing changed


_STAFF_KINDS = {LedgerKind.TOPUP, LedgerKind.ADJUSTMENT, LedgerKind.REFUND}


def _same_posting(entry: LedgerEntry, *, organization: Organization, kind: str, amount: Decimal) -> bool:
    return entry.organization_id == organization.pk and entry.kind == kind and entry.amount == amount


def ledger_post(
    *,
    organization: Organization,
    kind: str,
    amount: Decimal,
    reference: str,
    actor: User | None,
    memo: str = "",
) -> LedgerPostResult:
    """Post a top-up, adjustment or refund and move the balance with it, in one transaction.

    `amount` is what staff type: positive for top-ups and refunds (a refund pays money back, so the
    balance goes down), signed for adjustments. The reference is unique: posting it again with the
    same content changes nothing and says so (`created=False`); with other content it is refused.
    Top-ups raise the organization's cumulative top-ups, which set its rate tier; refunds lower them.
    """
    reference = reference.strip()
    memo = memo.strip()
    errors: dict[str, str] = {}
    if kind not in _STAFF_KINDS:
        errors["kind"] = "Choose top-up, adjustment or refund."
    if not reference or len(reference) > 100:
        errors["reference"] = "Enter a unique reference of 1 to 100 characters (e.g. the payment id)."
    if len(memo) > 200:
        errors["memo"] = "Keep the memo under 200 characters."
    if amount != quantize_micro(amount) or abs(amount) >= Decimal(10**11):
        errors["amount"] = "Enter an amount with at most 6 decimal places."
    elif kind in (LedgerKind.TOPUP, LedgerKind.REFUND) and amount <= 0:
        errors["amount"] = "Enter an amount greater than zero."
    elif kind == LedgerKind.ADJUSTMENT and amount == 0:
        errors["amount"] = "Enter a non-zero amount (negative to take money off the balance)."
    if kind == LedgerKind.ADJUSTMENT and not memo:
        errors["memo"] = "Say why the balance is adjusted."
    if errors:
        raise DomainError(code="invalid_ledger_entry", field_errors=errors)
    signed = -amount if kind == LedgerKind.REFUND else amount

    def post() -> LedgerPostResult:
        account = lock_accounts([organization.pk])[organization.pk]
        existing = LedgerEntry.objects.filter(reference=reference).first()
        if existing is not None:
            return _repeated_reference(existing, organization=organization, kind=kind, amount=signed)
        before = account.balance
        after = before + signed
        if kind == LedgerKind.REFUND and after < 0:
            raise DomainError(
                f"A refund cannot exceed the balance ({format_money(before)}).", code="refund_exceeds_balance",
                field="amount",
            )
        try:
            with transaction.atomic():
                entry = LedgerEntry.objects.create(
                    organization=organization, kind=kind, amount=signed, balance_after=after,
                    reference=reference, memo=memo, created_by=actor,
                )
        except IntegrityError:
            # The same reference committed meanwhile for another organization (this one is locked).
            existing = LedgerEntry.objects.get(reference=reference)
            return _repeated_reference(existing, organization=organization, kind=kind, amount=signed)
        account.balance = after
        account.save(update_fields=["balance", "updated_at"])
        if kind == LedgerKind.TOPUP:
            Organization.objects.filter(pk=organization.pk).update(cumulative_topups=F("cumulative_topups") + amount)
        elif kind == LedgerKind.REFUND:
            cumulative_topups_lower(organization_id=organization.pk, amount=amount)
        # A top-up re-arms the balance alert; a refund or adjustment may fire it.
        schedule_balance_alert_check(organization_id=organization.pk)
        audit_record(
            actor=actor,
            organization=organization,
            action=f"ledger.{kind}",
            target=entry,
            before={"balance": str(before)},
            after={"balance": str(after), "amount": str(signed), "reference": reference, "memo": memo},
        )
        return LedgerPostResult(entry=entry, created=True)

    return atomic_with_retry(post, what="ledger_post")


def ledger_staff_post(
    *, organization: Organization, kind: str, amount: Decimal, reference: str, actor: User | None, memo: str = "",
) -> LedgerPostResult:
    """Staff post a top-up (a wire transfer), an adjustment or a refund: `ledger_post` for a person
    who must be staff holding `billing.add_ledgerentry` (None: the platform, e.g. `balance_topup`).
    Card payments post through `ledger_post` itself, on a verified webhook, with the payer as actor."""
    require_staff(actor, "billing.add_ledgerentry")
    return ledger_post(organization=organization, kind=kind, amount=amount, reference=reference, actor=actor,
                       memo=memo)


def _repeated_reference(
    existing: LedgerEntry, *, organization: Organization, kind: str, amount: Decimal
) -> LedgerPostResult:
    if _same_posting(existing, organization=organization, kind=kind, amount=amount):
        return LedgerPostResult(entry=existing, created=False)
    raise DomainError(
        f"Reference “{existing.reference}” is already used by another ledger entry.",
        code="reference_taken", field="reference",
    )


# --- usage ingest ----------------------------------------------------------------------------------
