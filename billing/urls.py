from __future__ import annotations

from django.urls import path

from . import views

app_name = "billing"

urlpatterns = [
    path("o/<str:org_id>/billing/", views.billing_overview, name="overview"),
    path("o/<str:org_id>/billing/ledger.csv", views.ledger_csv, name="ledger_csv"),
    path("o/<str:org_id>/billing/invoices/request/", views.invoice_request, name="invoice_request"),
    path("o/<str:org_id>/billing/invoices/<str:number>.pdf", views.invoice_download, name="invoice_download"),
    path("o/<str:org_id>/usage/", views.org_usage, name="org_usage"),
    path("o/<str:org_id>/projects/<str:project_id>/usage/", views.project_usage_view, name="project_usage"),
    path("o/<str:org_id>/settings/balance-alerts/", views.balance_alerts, name="balance_alerts"),
    path("o/<str:org_id>/rate-limits/", views.org_rate_limits, name="org_rate_limits"),
    path("o/<str:org_id>/projects/<str:project_id>/rate-limits/", views.project_rate_limits,
         name="project_rate_limits"),
]
