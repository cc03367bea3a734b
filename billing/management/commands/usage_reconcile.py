"""`manage.py usage_reconcile`: the daily check that usage charges equal the events' costs."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.money import format_money
from billing.selectors.reconcile import usage_reconcile
from billing.timeutils import yesterday_utc


class Command(BaseCommand):
    help = "Check that a day's usage charges equal the sum of its events' costs, per organization."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", help="the UTC day, YYYY-MM-DD (default: yesterday)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            day = date.fromisoformat(options["date"]) if options["date"] else yesterday_utc()
        except ValueError as exc:
            raise CommandError("--date must be YYYY-MM-DD.") from exc
        report = usage_reconcile(day=day)
        if report.ok:
            self.stdout.write(
                self.style.SUCCESS(f"{day}: ledger and events agree for {report.organizations} organization(s).")
            )
            return
        for m in report.mismatches:
            self.stdout.write(
                f"{m.organization_id}: charged {m.ledger_usage} but events cost {m.event_cost} "
                f"(difference {m.difference}, {format_money(m.difference)})"
            )
        raise CommandError(f"{day}: {len(report.mismatches)} organization(s) do not reconcile.")
