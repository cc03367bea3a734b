"""Render the PDF of every issued invoice still without one (what beat runs every five minutes)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from billing.services.invoices import invoice_pdfs_render_missing


class Command(BaseCommand):
    help = "Render the PDFs of issued invoices whose rendering task was lost. Safe to repeat."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--now", action="store_true", help="Include invoices issued in the last two minutes.")

    def handle(self, *args: Any, **options: Any) -> None:
        rendered = invoice_pdfs_render_missing(older_than=timedelta(0) if options["now"] else timedelta(minutes=2))
        self.stdout.write(self.style.SUCCESS(f"Rendered {rendered} invoice PDF{'s' if rendered != 1 else ''}."))
