"""The WSGI entry point: `ConsoleApplication` picks the gateway's lean stack or the pages' full one by path."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings.production")

from console.handlers import ConsoleApplication

application = ConsoleApplication()
