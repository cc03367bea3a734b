"""`manage.py email_outbox_retry`: resend failed (or stuck) outbox emails."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from console.services import email_outbox_retry


class Command(BaseCommand):
    help = (
        "Re-enqueue outbox emails: failed ones (a new cycle of attempts) and pending ones whose "
        "send task was lost. --stuck-only does what the beat job does."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--stuck-only", action="store_true", help="Only pending emails nobody has tried for a while."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        count = email_outbox_retry(include_failed=not options["stuck_only"])
        self.stdout.write(self.style.SUCCESS(f"Re-enqueued {count} email{'' if count == 1 else 's'}."))
