"""The gateway API's URLs, included first under GATEWAY_PATH_PREFIX (console/urls.py): the
resolver tries them before the pages' patterns, and console.handlers serves them on a lean stack."""

from __future__ import annotations

from django.urls import path

from . import api

app_name = "gateway"

urlpatterns = [
    path("authorize", api.authorize, name="authorize"),
    path("usage", api.usage, name="usage"),
    path("release", api.release, name="release"),
    path("openapi.json", api.openapi, name="openapi"),
]
