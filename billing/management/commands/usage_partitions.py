"""`manage.py usage_partitions`: the partition and retention beat job, run by hand (PostgreSQL)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.services.partitions import usage_partitions, usage_partitions_maintain


class Command(BaseCommand):
    help = (
        "Usage event partitions (PostgreSQL): create the months ahead, move events out of the default "
        "partition, drop partitions past CONSOLE_USAGE_RETENTION_DAYS that are folded and reconciled, "
        "forget event ids past the accepted age. What beat runs hourly; safe to repeat."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--list", action="store_true", help="only list the partitions")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["list"]:
            for partition in usage_partitions():
                self.stdout.write(f"{partition.name}  {partition.month:%Y-%m}  ~{partition.rows:,} rows")
            return
        result = usage_partitions_maintain()
        if result.skipped:
            self.stdout.write(self.style.WARNING(f"Skipped: {result.skipped}."))
        for name in result.created:
            self.stdout.write(f"Created {name}.")
        if result.moved_rows:
            self.stdout.write(f"Moved {result.moved_rows} event(s) out of the default partition.")
        for name in result.dropped:
            self.stdout.write(f"Dropped {name} (past retention, folded and reconciled).")
        if result.keys_pruned:
            self.stdout.write(f"Forgot {result.keys_pruned} event id(s) past the accepted age.")
        for name, reason in result.refused:
            self.stderr.write(f"Kept {name}: {reason}.")
        if result.refused:
            raise CommandError(f"{len(result.refused)} partition(s) past retention were kept: see above.")
        self.stdout.write(self.style.SUCCESS("Usage partitions are up to date."))
