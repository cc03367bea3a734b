"""Request context for the pages' stack: a request id and the client IP for logs and the audit trail."""

from __future__ import annotations

from collections.abc import Callable

import structlog
from django.http import HttpRequest, HttpResponse
from ipware import get_client_ip

from .context import client_ip


class RequestContextMiddleware:
    """Expose the client's IP to services (audit events) for the duration of a request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # django-structlog's middleware (earlier in the stack) has already resolved the IP for the
        # log line; resolving it again would scan every header twice on each call (authorize too).
        ip = structlog.contextvars.get_contextvars().get("ip")
        if ip is None:
            ip, _routable = get_client_ip(request)
        token = client_ip.set(ip)
        try:
            return self.get_response(request)
        finally:
            client_ip.reset(token)
