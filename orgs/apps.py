"""The orgs app; it listens to allauth's login signal (orgs/receivers.py)."""

from __future__ import annotations

from django.apps import AppConfig


class OrgsConfig(AppConfig):
    name = "orgs"
    verbose_name = "Organizations"

    def ready(self) -> None:
        from . import receivers  # noqa: F401 -- connects allauth's login signal
