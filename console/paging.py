"""Pagination for list pages whose filters live in the query string."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Page, Paginator
from django.http import HttpRequest


def paginate(request: HttpRequest, items: Any, *, per_page: int) -> tuple[Page[Any], str]:
    """The requested page (a bad number gives the nearest real page) and the query string without
    `page`, for the links of components/pagination.html to keep the filters."""
    page = Paginator(items, per_page).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return page, query.urlencode()
