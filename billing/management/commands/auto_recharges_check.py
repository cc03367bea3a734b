"""`manage.py auto_recharges_check`: the auto-recharge beat job, run by hand."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from billing.services.auto_recharge import auto_recharges_check


class Command(BaseCommand):
    help = (
        "Check every organization's auto-recharge now (the beat job's work): charge the saved card once "
        "for a balance below its threshold, re-arm the ones back above it, resubmit lost charges."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        acted = auto_recharges_check()
        self.stdout.write(self.style.SUCCESS(f"Auto-recharge checked: {acted} acted."))
