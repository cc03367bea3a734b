"""The root URLconf: the apps' pages, allauth's accounts, the gateway API, the staff admin, health."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from billing.stripe_webhooks import stripe_webhook

from . import views

admin.site.site_header = "Organization console — staff"
admin.site.site_title = "Console staff"

urlpatterns = [
    # First: the gateway's hot path should not be matched against every page's pattern.
    path(settings.GATEWAY_PATH_PREFIX.lstrip("/"), include("billing.api_urls")),
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
    path("stripe/webhook", stripe_webhook, name="stripe_webhook"),
    path("", include("orgs.urls")),
    path("", include("projects.urls")),
    path("", include("billing.urls")),
]
