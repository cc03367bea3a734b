"""The console project app: the User model, the email outbox, settings checks and shared helpers."""

from __future__ import annotations

from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = "Console"

    def ready(self) -> None:
        from . import (
            checks,  # noqa: F401 -- registers the production checks
            forwarded,  # noqa: F401 -- registers its system check
        )
