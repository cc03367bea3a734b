"""PDF documents (invoices) rendered from HTML templates with WeasyPrint.

Templates extend ``pdf/base.html`` (A4, DejaVu fonts, page numbers). WeasyPrint may load only
``data:`` URLs and files under the static folders: a document never fetches anything from the
network or elsewhere on disk, whatever text ends up in it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from django.conf import settings
from django.template.loader import render_to_string


def _static_roots() -> list[Path]:
    roots = [Path(p) for p in settings.STATICFILES_DIRS]
    return [root.resolve() for root in [*roots, Path(settings.STATIC_ROOT)]]


@cache
def _fetcher_class() -> type:
    # WeasyPrint needs Pango (system libraries): imported when a PDF is made, not at start-up.
    from weasyprint.urls import URLFetcher

    class StaticOnlyFetcher(URLFetcher):  # type: ignore[misc]
        def fetch(self, url: str, headers: dict[str, str] | None = None) -> Any:
            parsed = urlparse(url)
            if parsed.scheme == "file":
                path = Path(unquote(parsed.path)).resolve()
                if any(path.is_relative_to(root) for root in _static_roots()):
                    return super().fetch(url, headers)
            elif parsed.scheme == "data":
                return super().fetch(url, headers)
            raise ValueError(f"PDF documents may not load {url!r}: only static files and data: URLs.")

    return StaticOnlyFetcher


def render_pdf(template_name: str, context: dict[str, Any]) -> bytes:
    """Render an HTML template to PDF bytes; relative URLs resolve against the static folder."""
    from weasyprint import HTML

    html = render_to_string(template_name, context)
    base_url = (Path(settings.BASE_DIR) / "static").as_uri() + "/"
    pdf: bytes = HTML(string=html, base_url=base_url, url_fetcher=_fetcher_class()()).write_pdf()
    return pdf
