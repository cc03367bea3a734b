"""`manage.py usage_aggregate`: the rollup beat job, run by hand."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from billing.services.rollups import usage_aggregate


class Command(BaseCommand):
    help = "Fold new usage events into the rollups (what beat runs every minute). Safe to repeat."

    def handle(self, *args: Any, **options: Any) -> None:
        result = usage_aggregate()
        if result.skipped:
            self.stdout.write(self.style.WARNING("Another usage_aggregate run is in progress: nothing done."))
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Folded {result.events} events from {result.batches} batches into {result.rollups} rollups."
            )
        )
