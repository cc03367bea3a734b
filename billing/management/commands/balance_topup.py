"""`manage.py balance_topup`: staff top up an organization (wire transfers), once per reference."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.models import LedgerKind
from billing.money import format_money, parse_amount
from billing.services.ledger import ledger_staff_post
from console.errors import DomainError
from orgs.models import Organization


class Command(BaseCommand):
    help = "Top up an organization's balance. The reference is unique: repeating it tops up once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("organization_id", help="the organization ID (org-…)")
        parser.add_argument("amount", help="e.g. 25.00")
        parser.add_argument("--reference", required=True, help="unique, e.g. the payment id")
        parser.add_argument("--memo", default="", help="shown on the organization's ledger")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = Organization.objects.filter(public_id=options["organization_id"]).first()
        if organization is None:
            raise CommandError(f"No organization with ID {options['organization_id']}.")
        try:
            result = ledger_staff_post(
                organization=organization,
                kind=LedgerKind.TOPUP,
                amount=parse_amount(options["amount"]),
                reference=options["reference"],
                memo=options["memo"],
                actor=None,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        entry = result.entry
        if not result.created:
            self.stdout.write(
                self.style.WARNING(
                    f"Reference {entry.reference} was already topped up on {entry.created_at:%Y-%m-%d %H:%M} UTC "
                    f"({format_money(entry.amount)}): nothing changed."
                )
            )
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Topped up {organization.name} ({organization.public_id}) by {format_money(entry.amount)}; "
                f"balance is now {format_money(entry.balance_after)}."
            )
        )
