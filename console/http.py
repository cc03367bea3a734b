"""Request types for views: django-htmx's details plus the signed-in user."""

from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

from console.models import User


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


class AuthedHttpRequest(HtmxHttpRequest):
    """A request behind @login_required: the user is a real User."""

    user: User
