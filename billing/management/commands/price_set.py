"""`manage.py price_set`: staff record a model's price from a moment on (history is kept)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_datetime

from billing.money import format_money, parse_amount
from billing.services.prices import price_set
from console.errors import DomainError


def amount_argument(text: str) -> Decimal:
    try:
        return parse_amount(text)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc


class Command(BaseCommand):
    help = "Set a model's price per million input and output tokens (a new row: history is kept)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model")
        parser.add_argument("--input", required=True, help="price per 1M input tokens, e.g. 1.20")
        parser.add_argument("--output", required=True, help="price per 1M output tokens, e.g. 4.80")
        parser.add_argument("--effective-from", help="ISO 8601 date-time (UTC unless it says otherwise); default now")

    def handle(self, *args: Any, **options: Any) -> None:
        effective_from = None
        if options["effective_from"]:
            effective_from = parse_datetime(options["effective_from"])
            if effective_from is None:
                raise CommandError("--effective-from must be an ISO 8601 date-time, e.g. 2026-03-01T00:00:00Z.")
        try:
            price = price_set(
                model=options["model"],
                input_per_mtok=amount_argument(options["input"]),
                output_per_mtok=amount_argument(options["output"]),
                effective_from=effective_from,
                actor=None,
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"{price.model}: {format_money(price.input_per_mtok)} input / {format_money(price.output_per_mtok)} "
                f"output per 1M tokens from {price.effective_from:%Y-%m-%d %H:%M:%S %Z}."
            )
        )
