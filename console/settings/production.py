"""Production: refuses to start without SECRET_KEY; `manage.py check --deploy` passes only with
EMAIL_URL, DATABASE_URL, REDIS_URL and CELERY_BROKER_URL set (console/checks.py)."""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

if not os.environ.get("SECRET_KEY"):
    raise ImproperlyConfigured("SECRET_KEY must be set in production.")

from .base import *  # noqa: F403
from .base import configure_logging, env

DEBUG = False
# `check --deploy` refuses the embedded defaults (console/checks.py): SMTP, PostgreSQL, Redis, a broker.
CONSOLE_REQUIRE_SERVICES = True
LOG_JSON = env.bool("LOG_JSON", default=True)
LOGGING = configure_logging(json=LOG_JSON, level=env.str("LOG_LEVEL", default="INFO"))
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^api/"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https"
