from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from ipware import get_client_ip

from .context import client_ip


class RequestContextMiddleware:
    """Expose the client's IP to services (audit events) for the duration of a request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        ip, _routable = get_client_ip(request)
        token = client_ip.set(ip)
        try:
            return self.get_response(request)
        finally:
            client_ip.reset(token)
