"""Request context for the pages' stack: a request id and the client IP for logs and the audit trail."""

from __future__ import annotations

from collections.abc import Callable

import structlog
from django.http import HttpRequest, HttpResponse

from .context import client_ip
from .forwarded import client_address, peer_is_trusted_proxy


class ForwardedProtoMiddleware:
    """`X-Forwarded-Proto` is the client's word unless a configured proxy sent it: from any other
    peer it is dropped before SecurityMiddleware (SECURE_PROXY_SSL_HEADER) reads it, so a client
    that reaches gunicorn directly cannot claim HTTPS."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "HTTP_X_FORWARDED_PROTO" in request.META and not peer_is_trusted_proxy(request):
            del request.META["HTTP_X_FORWARDED_PROTO"]
        return self.get_response(request)


class RequestContextMiddleware:
    """Expose the client's IP to services (audit events) and the request log for the duration of a
    request. Forwarded headers count only as far as trusted proxies vouch for them (console.forwarded)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        ip = client_address(request)
        # django-structlog's own IP (which believes any X-Forwarded-For) is off in settings: this one
        # goes on the request_finished line instead.
        structlog.contextvars.bind_contextvars(ip=ip)
        token = client_ip.set(ip)
        try:
            return self.get_response(request)
        finally:
            client_ip.reset(token)
