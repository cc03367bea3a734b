"""The billing app: prices, the ledger, usage ingest and rollups, enforcement, alerts, invoices, payments."""

from __future__ import annotations

from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        # The outbox (console) imports no app: receipts emails attach their PDF through this kind.
        from console.services import email_attachment_register

        from .services.receipts import RECEIPT_ATTACHMENT, receipt_attachment

        email_attachment_register(RECEIPT_ATTACHMENT, receipt_attachment)
