"""System checks for production: the embedded defaults that `make run` relies on are refused.

Each is fine on a laptop and wrong on a server, silently: emails printed to stdout (invitation,
password-reset and verification links end up in logs), SQLite, a rate limiter per process (each
gunicorn worker lets its own TPM through), a broker on the local filesystem (workers on another
host never see the tasks). `manage.py check --deploy` reports each one as an error naming the
variable to set. Active where settings say CONSOLE_REQUIRE_SERVICES (console/settings/production.py).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

# Email backends that never deliver anything to anyone.
_LOCAL_EMAIL_BACKENDS = {
    "console.mail.ConsoleAndFileBackend",
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.filebased.EmailBackend",
    "django.core.mail.backends.locmem.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
}
_LOCAL_BROKERS = ("filesystem://", "memory://")


@register("console", deploy=True)
def embedded_defaults_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if not getattr(settings, "CONSOLE_REQUIRE_SERVICES", False):
        return []
    errors: list[CheckMessage] = []
    if settings.EMAIL_BACKEND in _LOCAL_EMAIL_BACKENDS:
        errors.append(Error(
            f"Emails are not sent: the backend is {settings.EMAIL_BACKEND}, so invitation, password-reset "
            "and verification links would land in the logs.",
            hint="Set EMAIL_URL (e.g. smtp+tls://user:password@smtp.example.com:587).",
            id="console.E001",
        ))
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        errors.append(Error(
            "The database is SQLite, the embedded default.",
            hint="Set DATABASE_URL (e.g. postgres://console:password@db.example.com:5432/console).",
            id="console.E002",
        ))
    if not getattr(settings, "REDIS_URL", ""):
        errors.append(Error(
            "No Redis: rate limits are kept per process, so each gunicorn worker lets its own TPM through.",
            hint="Set REDIS_URL (e.g. redis://redis.example.com:6379/0).",
            id="console.E003",
        ))
    if settings.CELERY_BROKER_URL.startswith(_LOCAL_BROKERS):
        errors.append(Error(
            f"The Celery broker is {settings.CELERY_BROKER_URL.split('://')[0]}://, local to this host: "
            "workers elsewhere never see its tasks.",
            hint="Set CELERY_BROKER_URL (e.g. the Redis of REDIS_URL: redis://redis.example.com:6379/1).",
            id="console.E004",
        ))
    return errors
