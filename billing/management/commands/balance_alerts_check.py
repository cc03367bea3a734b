"""`manage.py balance_alerts_check`: the balance-alert beat job, run by hand."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from billing.services.alerts import balance_alerts_check


class Command(BaseCommand):
    help = (
        "Check every organization's balance alert now (the beat job's work): fire the ones whose "
        "balance is below the threshold, re-arm the ones back at or above it."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        changed = balance_alerts_check()
        self.stdout.write(self.style.SUCCESS(f"Balance alerts checked: {changed} changed state."))
