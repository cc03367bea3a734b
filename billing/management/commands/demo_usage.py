"""`manage.py demo_usage` (`make demo-usage`): demo calls that take the demo balance under its alert."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from billing.demo import billing_demo_usage
from billing.money import format_money
from console.demo import DEMO_ORG_NAME
from orgs.models import Organization


class Command(BaseCommand):
    help = (
        "Simulate API usage of the demo organization through the real ingest service, enough to take "
        "its balance just below the balance alert threshold. With `make run`, the worker then prints "
        "the alert email once; top up (`manage.py balance_topup`) to re-arm it."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        organization = Organization.objects.filter(name=DEMO_ORG_NAME).order_by("pk").first()
        if organization is None:
            raise CommandError("No demo organization: run `manage.py demo` first.")
        try:
            usage = billing_demo_usage(organization=organization)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(
            f"Sent {usage.events} demo call{'s' if usage.events != 1 else ''} ({format_money(usage.cost)}) "
            f"for {organization.name} "
            f"({organization.public_id}); balance is now {format_money(usage.balance)}, "
            f"alert threshold {format_money(usage.threshold)}."
        ))
