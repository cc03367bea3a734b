"""Request body limits for the pages (the gateway API has its own: CONSOLE_USAGE_MAX_BODY_BYTES).

A body larger than CONSOLE_MAX_REQUEST_BYTES is refused by its Content-Length (a 413 page) before
Django reads any of it; Django never reads past Content-Length, and ignores a body without one.
Everything accepted fits FILE_UPLOAD_MAX_MEMORY_SIZE, so an upload is never written to a
temporary file: it is checked (size, content) in memory, then stored or dropped. Form fields
without files are capped by DATA_UPLOAD_MAX_MEMORY_SIZE (Django answers 400).
nginx refuses the same bodies first with `client_max_body_size` (deploy/nginx/console-site.conf.template).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def _declared_length(request: HttpRequest) -> int:
    text = request.META.get("CONTENT_LENGTH") or ""
    return int(text) if text.isascii() and text.isdigit() else 0


class RequestBodyLimitMiddleware:
    """413 for a page request whose declared body is over the limit, before anything parses it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit: int = settings.CONSOLE_MAX_REQUEST_BYTES
        if _declared_length(request) > limit:
            documents = settings.CONSOLE_VERIFICATION_MAX_BYTES // (1024 * 1024)
            text = (f"What you sent is larger than {limit // (1024 * 1024)} MB. Documents may be up to "
                    f"{documents} MB (PDF, PNG or JPEG): go back and choose a smaller file.")
            return render(request, "413.html", {"text": text}, status=413)
        return self.get_response(request)
