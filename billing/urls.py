"""Billing's pages: the Billing page and ledger, balance alerts, invoices, usage charts, rate-limit
gauges and card payments (the gateway API's URLs are in api_urls.py)."""

from __future__ import annotations

from django.urls import path

from . import payment_views, views

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
    path("o/<str:org_id>/billing/add-funds/", payment_views.add_funds, name="add_funds"),
    path("o/<str:org_id>/billing/add-funds/pay/", payment_views.add_funds_pay, name="add_funds_pay"),
    path("o/<str:org_id>/billing/payments/<int:payment_id>/", payment_views.payment_status, name="payment_status"),
    path("o/<str:org_id>/billing/receipts/<str:intent_id>.pdf", payment_views.receipt_download, name="receipt"),
    path("o/<str:org_id>/billing/auto-recharge/", payment_views.auto_recharge, name="auto_recharge"),
    path("o/<str:org_id>/billing/auto-recharge/card/confirm/", payment_views.auto_recharge_card_confirm,
         name="auto_recharge_card_confirm"),
    path("o/<str:org_id>/billing/auto-recharge/card/remove/", payment_views.auto_recharge_card_delete,
         name="auto_recharge_card_remove"),
]
