"""The billing app: prices, the ledger, usage ingest and rollups, enforcement, alerts, invoices, payments."""

from __future__ import annotations

from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"
