"""`manage.py invoice_issue`: staff issue or reject a requested invoice."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.money import format_money
from billing.services.invoices import invoice_issue, invoice_request_reject
from console.errors import DomainError


class Command(BaseCommand):
    help = "Issue the invoice of a request (number, lines, PDF, email), or reject it with --reject REASON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("request_id", type=int, help="the invoice request's id (see the admin)")
        parser.add_argument("--reject", metavar="REASON", help="reject the request instead, telling the org why")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["reject"] is not None:
                invoice_request_reject(request_id=options["request_id"], actor=None, reason=options["reject"])
                self.stdout.write(self.style.SUCCESS(f"Rejected invoice request {options['request_id']}."))
                return
            invoice = invoice_issue(request_id=options["request_id"], actor=None)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Issued {invoice.number} to {invoice.organization.name} ({invoice.organization.public_id}), "
                f"total {format_money(invoice.total)}."
            )
        )
