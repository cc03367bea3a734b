"""`manage.py demo`: load or refresh the demo organization (console/demo.py)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from console.demo import DEMO_PASSWORD, demo_load


class Command(BaseCommand):
    help = "Load (or refresh) the demo organization, its admin login, a project and an API key. Idempotent."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--new-key",
            action="store_true",
            help="Revoke the demo API key and print a new one (a key's secret is shown only once).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        result = demo_load(new_key=options["new_key"])
        verb = "Created" if result.created else "Refreshed"
        self.stdout.write(self.style.SUCCESS(f"{verb} demo organization {result.organization.public_id}."))
        self.stdout.write(
            f"\n  Console:  {settings.CONSOLE_SITE_URL}/\n"
            f"  Login:    {result.user.email}\n"
            f"  Password: {DEMO_PASSWORD}\n"
            f"  Project:  {result.project.name} ({result.project.public_id})\n"
        )
        if result.api_key:
            # A local demo only: printing the secret once is the point (it is shown nowhere else).
            self.stdout.write(f"  API key:  {result.api_key}\n")
        else:
            self.stdout.write(
                "  API key:  a demo key exists; its secret was shown once, when it was made "
                "(`manage.py demo --new-key` replaces it)\n"
            )
        tokens = settings.CONSOLE_GATEWAY_TOKENS
        self.stdout.write(
            f"  Gateway token: {tokens[0] if tokens else '(none: set CONSOLE_GATEWAY_TOKENS)'}"
            "  (curl examples in README.md)\n"
        )
