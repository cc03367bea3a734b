from __future__ import annotations

from django.urls import path

from . import views

app_name = "billing"

urlpatterns = [
    path("o/<str:org_id>/billing/", views.billing_overview, name="overview"),
]
