"""Logging: one structured line per request, carrying a request id (django-structlog).

Secrets that can appear in a URL (invitation tokens) or a header (API keys) are redacted by a
processor before anything is rendered, so they never reach a log file.
"""

from __future__ import annotations

import re
from typing import Any

import structlog

# Recognisable secret prefixes: invitation tokens and API keys (the default "sk-" prefix).
SECRET_PATTERN = re.compile(r"(inv_|sk-)[A-Za-z0-9_\-]{8,}")


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return SECRET_PATTERN.sub(lambda m: m.group(1) + "[redacted]", value)
    return value


def redact_secrets(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return {key: _redact(value) for key, value in event_dict.items()}


def configure_logging(*, json: bool, level: str) -> dict[str, Any]:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    structlog.configure(
        processors=[
            # First: a line below the configured level costs a level check, not the whole chain.
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processor": renderer,
                "foreign_pre_chain": shared,
            }
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # django-structlog writes request_finished with the request id; Django's own
            # access line would be a second, id-less line per request.
            "django.server": {"level": "WARNING"},
            "django.request": {"level": "ERROR"},
            "django.db.backends": {"level": "WARNING"},
            # WeasyPrint logs each rendering step at INFO; its warnings (a refused URL) stay.
            "weasyprint": {"level": "WARNING"},
        },
    }


