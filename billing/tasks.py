"""Beat jobs: thin, idempotent, each also a manage.py command calling the same service."""

from __future__ import annotations

from datetime import date
from typing import Any

from celery import shared_task

from .selectors.reconcile import usage_reconcile
from .services.alerts import balance_alert_check, balance_alerts_check, consumption_notifications_check, usage_notify
from .services.auto_recharge import auto_recharge_check, auto_recharges_check
from .services.invoices import invoice_pdf_render, invoice_pdfs_render_missing
from .services.partitions import usage_partitions_maintain
from .services.rollups import usage_aggregate
from .timeutils import yesterday_utc


@shared_task(name="billing.usage_aggregate")
def usage_aggregate_task() -> None:
    usage_aggregate()


@shared_task(name="billing.usage_partitions_maintain")
def usage_partitions_maintain_task() -> None:
    """Beat, hourly: partitions ahead, retention, old event-id keys (all idempotent)."""
    usage_partitions_maintain()


@shared_task(name="billing.usage_reconcile")
def usage_reconcile_task(day: str | None = None) -> None:
    usage_reconcile(day=date.fromisoformat(day) if day else yesterday_utc())


@shared_task(name="billing.balance_alert_check")
def balance_alert_check_task(organization_id: int) -> None:
    balance_alert_check(organization_id=organization_id)
    auto_recharge_check(organization_id=organization_id)


@shared_task(name="billing.balance_alerts_check")
def balance_alerts_check_task() -> None:
    """Beat, every minute: catches a crossing whose trigger was lost (worker down, broker down),
    for balance alerts and auto-recharge alike."""
    balance_alerts_check()
    auto_recharges_check()


@shared_task(name="billing.consumption_notifications_check")
def consumption_notifications_check_task() -> None:
    """Beat, every five minutes: catches a consumption notice whose per-batch task was lost."""
    consumption_notifications_check()


@shared_task(name="billing.usage_notify")
def usage_notify_task(organization_ids: list[int], periods: list[list[Any]]) -> None:
    """After an ingest batch: its organizations' balance alerts and its projects' consumption."""
    usage_notify(organization_ids=organization_ids, periods=[(p[0], p[1], p[2]) for p in periods])
    for organization_id in sorted(set(organization_ids)):
        auto_recharge_check(organization_id=organization_id)


# A PDF that fails to render (WeasyPrint, fonts, memory) is retried with backoff; beat re-queues
# any invoice still without one, so an issued number never stays without its document.
@shared_task(name="billing.invoice_pdf_render", autoretry_for=(Exception,), retry_backoff=5, retry_backoff_max=300,
             max_retries=8)
def invoice_pdf_render_task(invoice_id: int) -> None:
    invoice_pdf_render(invoice_id=invoice_id)


@shared_task(name="billing.invoice_pdfs_render_missing")
def invoice_pdfs_render_missing_task() -> None:
    """Beat, every five minutes: invoices whose PDF task was lost."""
    invoice_pdfs_render_missing()
