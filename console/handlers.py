"""The WSGI application: pages on Django's full middleware stack, the gateway API on a lean one.

The gateway API (`/api/v1/gateway/`) is machine to machine: the gateway authenticates with its
token and the customer with an API key, on every call. Sessions, cookies, CSRF, messages, allauth
and htmx have nothing to do there, yet on the full stack they cost about a third of an authorize
call (bench/authorize.py). So the same Django project, URLs and views are served by two handlers,
and the path decides which one.

The gateway's tests use a test client on the lean stack (billing/tests/conftest.py);
billing/tests/test_gateway_stack.py drives this application itself.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import django
import structlog
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

logger = structlog.get_logger("console.gateway")

_HOOKS = ("process_view", "process_template_response", "process_exception")


def load_gateway_middleware(handler: Any) -> None:  # a BaseHandler: django-stubs omit its private attributes
    """BaseHandler.load_middleware reads settings.MIDDLEWARE only; this is its loop for
    settings.GATEWAY_MIDDLEWARE and plain synchronous middleware (gunicorn's sync workers,
    runserver's threads). The hooks it also collects are refused, so no middleware here can be
    silently half-applied. (The gateway tests' client loads its chain with this too.)"""
    handler._view_middleware = []
    handler._template_response_middleware = []
    handler._exception_middleware = []
    chain = convert_exception_to_response(handler._get_response)
    for path in reversed(settings.GATEWAY_MIDDLEWARE):
        middleware = import_string(path)(chain)
        if any(hasattr(middleware, hook) for hook in _HOOKS):
            raise ImproperlyConfigured(f"{path} has {'/'.join(_HOOKS)} hooks; GATEWAY_MIDDLEWARE runs none.")
        chain = convert_exception_to_response(middleware)
    handler._middleware_chain = chain


class GatewayHandler(WSGIHandler):
    """Django's WSGI handler with settings.GATEWAY_MIDDLEWARE instead of settings.MIDDLEWARE."""

    def load_middleware(self, is_async: bool = False) -> None:
        load_gateway_middleware(self)


class ConsoleApplication:
    """Route each request to the gateway's handler or the pages' handler by its path."""

    def __init__(self) -> None:
        django.setup(set_prefix=False)
        self.pages = WSGIHandler()
        self.gateway = GatewayHandler()
        self.gateway_prefix: str = settings.GATEWAY_PATH_PREFIX

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        handler = self.gateway if environ.get("PATH_INFO", "").startswith(self.gateway_prefix) else self.pages
        return handler(environ, start_response)


class GatewayRequestLogMiddleware:
    """The gateway's request line: what django-structlog writes for pages (`request_finished` with a
    request id, taken from X-Request-ID when the gateway sends one), plus the error code of a denial
    and the time taken, without the client-IP and user look-ups that a page needs."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.get_host()  # ALLOWED_HOSTS, as CommonMiddleware checks it for pages: DisallowedHost -> 400
        started = time.perf_counter()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            request_id=request.META.get("HTTP_X_REQUEST_ID", "")[:100] or str(uuid.uuid4()),
        )
        try:
            response = self.get_response(request)
            status = response.status_code
            line = {"code": status, "request": f"{request.method} {request.path}",
                    "peer": request.META.get("REMOTE_ADDR"),
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2)}
            if error := getattr(response, "gateway_error_code", None):
                line["error"] = error
            # A denial (401/403/429) is the gateway doing its job: INFO like a 200; a 5xx is an ERROR.
            logger.log(logging.ERROR if status >= 500 else logging.INFO, "request_finished", **line)
            return response
        finally:
            structlog.contextvars.clear_contextvars()
