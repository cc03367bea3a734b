"""`manage.py consumption_notifications_check`: the consumption-notification sweep, run by hand."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from billing.services.alerts import consumption_notifications_check


class Command(BaseCommand):
    help = (
        "Send the consumption notifications due for spend counters that moved in the last two hours "
        "(the beat job's work); one already sent is never sent again."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        queued = consumption_notifications_check()
        self.stdout.write(self.style.SUCCESS(f"Consumption notifications checked: {queued} queued."))
