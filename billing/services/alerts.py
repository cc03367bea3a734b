"""Balance alerts and consumption notifications: decided in a transaction, emailed through the
outbox under a unique key, so each crossing is one email whatever runs concurrently.

- Balance alert: a state machine per organization (armed → fired when the balance drops below
  the threshold, fired → armed when it is back at or above it). Firing is a conditional UPDATE
  that only one transaction can win; the email's key carries the crossing number.
- Consumption notifications: no state of their own. The outbox key
  ``consumption:<project>:<day|month>:<period start>:<percent>`` is the guard: one email per
  project, period and threshold.

Both run after the usage charge commits (a Celery task per ingest batch); the balance alert also
after every ledger posting and every minute (beat), and consumption notifications every five
minutes (beat) for the spend counters that moved lately, so a lost trigger is caught.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from console.errors import DomainError
from console.models import User
from console.services import absolute_url, email_addresses_clean, email_enqueue
from orgs.audit import audit_record
from orgs.models import Organization
from orgs.permissions import require_org_admin
from projects.models import Project

from ..models import MAX_ALERT_RECIPIENTS, AlertState, BalanceAlert, BillingAccount, ProjectSpend, SpendPeriod
from ..money import CENT, format_money
from ..selectors.alerts import balance_alert_recipients, consumption_recipients
from ..selectors.runway import runway_forecast

logger = structlog.get_logger(__name__)

MAX_THRESHOLD = Decimal("1000000")


def schedule_balance_alert_check(*, organization_id: int) -> None:
    """Check the organization's balance alert once the caller's transaction commits."""
    from ..tasks import balance_alert_check_task  # the task module imports this one

    # robust: a broker that is down must not fail the committed change; the beat job catches up.
    transaction.on_commit(lambda: balance_alert_check_task.delay(organization_id), robust=True)


def schedule_usage_notify(*, organization_ids: list[int], periods: list[tuple[int, str, str]]) -> None:
    """After an ingest batch commits: its balance alerts and consumption notifications."""
    from ..tasks import usage_notify_task

    rows = [list(p) for p in periods]
    transaction.on_commit(lambda: usage_notify_task.delay(organization_ids, rows), robust=True)


# --- balance alerts ------------------------------------------------------------------------------


def _alert_row(organization_id: int) -> BalanceAlert:
    BalanceAlert.objects.bulk_create([BalanceAlert(organization_id=organization_id)], ignore_conflicts=True)
    return BalanceAlert.objects.get(organization_id=organization_id)


def _clean_alert_settings(threshold: Decimal, extra_recipients: Sequence[str]) -> list[str]:
    errors: dict[str, str] = {}
    if threshold < 0 or threshold >= MAX_THRESHOLD or threshold != threshold.quantize(CENT):
        errors["threshold"] = "Enter an amount from 0.00 up to 999,999.99, with at most 2 decimal places."
    recipients: list[str] = []
    try:  # the one rule for address lists (valid, blanks skipped, de-duplicated): console.services
        recipients = email_addresses_clean(
            extra_recipients,
            limit=MAX_ALERT_RECIPIENTS,
            too_many=f"Enter at most {MAX_ALERT_RECIPIENTS} additional addresses.",
        )
    except DomainError as error:
        errors["extra_recipients"] = error.message
    if errors:
        raise DomainError(code="invalid_alert_settings", field_errors=errors)
    return recipients


@transaction.atomic
def balance_alert_update(
    *,
    organization: Organization,
    actor: User,
    enabled: bool,
    threshold: Decimal,
    extra_recipients: Sequence[str],
) -> BalanceAlert:
    """Change the alert's settings (audited); the alert is checked again after commit, so a
    threshold raised above the current balance fires at once. Org admins only."""
    require_org_admin(actor, organization.pk)
    recipients = _clean_alert_settings(threshold, extra_recipients)
    _alert_row(organization.pk)
    alert = BalanceAlert.objects.select_for_update().get(organization=organization)
    before = {"enabled": alert.enabled, "threshold": str(alert.threshold), "extra_recipients": alert.extra_recipients}
    alert.enabled = enabled
    alert.threshold = threshold
    alert.extra_recipients = recipients
    alert.save(update_fields=["enabled", "threshold", "extra_recipients", "updated_at"])
    after = {"enabled": enabled, "threshold": str(threshold), "extra_recipients": recipients}
    if after != before:
        audit_record(
            actor=actor, organization=organization, action="balance_alert.update", target=alert,
            before=before, after=after,
        )
    schedule_balance_alert_check(organization_id=organization.pk)
    return alert


def _due_alerts() -> QuerySet[BalanceAlert]:
    """Alerts whose state disagrees with their organization's balance."""
    balance = F("organization__billing_account__balance")
    return BalanceAlert.objects.filter(organization__billing_account__isnull=False).filter(
        Q(state=AlertState.ARMED, enabled=True, threshold__gt=balance)
        | Q(state=AlertState.FIRED, threshold__lte=balance)
    )


def _transition_due(organization_id: int) -> bool:
    alert = BalanceAlert.objects.filter(organization_id=organization_id)
    if not alert.exists():  # a funded organization with the default settings
        return BillingAccount.objects.filter(organization_id=organization_id).exists()
    return _due_alerts().filter(organization_id=organization_id).exists()


@transaction.atomic
def balance_alert_check(*, organization_id: int) -> str:
    """Fire the alert (one email) when the balance is below the threshold, re-arm it when the
    balance is back at or above it. Returns "fired", "rearmed" or "".

    The billing account is locked first (the ledger's lock order), so the balance read is the one
    the state change is decided on: a top-up cannot slip between the read and the update.
    """
    # Unlocked look first: most checks (one per ingest batch) find nothing to change and should
    # not queue behind the ledger's lock. Every later balance change runs its own check.
    if not _transition_due(organization_id):
        return ""
    account = (
        BillingAccount.objects.select_for_update(of=("self",)).filter(organization_id=organization_id).first()
    )
    if account is None:  # never funded: there was no balance to drop
        return ""
    alert = _alert_row(organization_id)
    rows = BalanceAlert.objects.filter(organization_id=organization_id)
    if account.balance >= alert.threshold:
        if alert.state == AlertState.FIRED and rows.filter(state=AlertState.FIRED).update(state=AlertState.ARMED):
            logger.info("balance_alert_rearmed", organization_id=organization_id)
            return "rearmed"
        return ""
    if not alert.enabled or alert.state != AlertState.ARMED:
        return ""
    # The conditional update is the decision: of concurrent checks, only one changes the row.
    if not rows.filter(state=AlertState.ARMED).update(
        state=AlertState.FIRED, fired_at=timezone.now(), crossings=F("crossings") + 1
    ):
        return ""
    alert.refresh_from_db(fields=["crossings"])
    organization = Organization.objects.get(pk=organization_id)
    email_enqueue(
        to=balance_alert_recipients(organization=organization, alert=alert),
        template="balance_alert",
        context={
            "org_name": organization.name,
            "org_id": organization.public_id,
            "balance": format_money(account.balance),
            "threshold": format_money(alert.threshold),
            "exhausted": account.balance <= 0,
            "runway": runway_forecast(organization_id=organization_id, balance=account.balance).text,
            "billing_url": absolute_url("billing:overview", org_id=organization.public_id),
            "settings_url": absolute_url("billing:balance_alerts", org_id=organization.public_id),
            "sales_email": settings.CONSOLE_SALES_EMAIL,
        },
        unique_key=f"balance_alert:{organization.public_id}:{alert.crossings}",
        organization_ref=organization.public_id,
    )
    logger.info("balance_alert_fired", organization_id=organization_id, crossing=alert.crossings)
    return "fired"


def balance_alerts_check() -> int:
    """The beat job: check every organization whose alert state disagrees with its balance.
    Returns how many changed state."""
    # Alert rows for funded organizations that never saved settings (they get the default).
    missing = BillingAccount.objects.filter(organization__balance_alert__isnull=True).values_list(
        "organization_id", flat=True
    )
    BalanceAlert.objects.bulk_create([BalanceAlert(organization_id=i) for i in missing], ignore_conflicts=True)
    changed = 0
    for organization_id in _due_alerts().values_list("organization_id", flat=True).order_by("organization_id"):
        changed += bool(balance_alert_check(organization_id=organization_id))
    return changed


# --- consumption notifications ---------------------------------------------------------------------




def _period_label(period: str, start: date) -> str:
    if period == SpendPeriod.DAY:
        return f"today ({start:%b} {start.day}, {start.year}, UTC)"
    return f"in {start:%B %Y} (UTC)"


@transaction.atomic
def consumption_check(*, project_id: int, period: str, period_start: date) -> int:
    """Email every threshold of the project's budget for this period that its spend has reached
    and that was not emailed yet. Returns how many emails were queued."""
    project = Project.objects.select_related("organization").filter(pk=project_id, archived_at=None).first()
    if project is None:
        return 0
    if period == SpendPeriod.DAY:
        budget, percents = project.daily_budget, project.notify_percents(daily=True)
    else:
        budget, percents = project.monthly_budget, project.notify_percents(daily=False)
    if not budget or not percents:
        return 0
    spent = (
        ProjectSpend.objects.filter(project=project, period=period, period_start=period_start)
        .values_list("spent", flat=True)
        .first()
    )
    reached = [p for p in percents if spent is not None and spent * 100 >= budget * p]
    if not reached:
        return 0
    recipients = consumption_recipients(project=project)
    if not recipients:
        return 0
    organization = project.organization
    settings_url = absolute_url("projects:settings", org_id=organization.public_id, project_id=project.public_id)
    queued = 0
    for percent in reached:
        email = email_enqueue(
            to=recipients,
            template="consumption_notice",
            context={
                "project_name": project.name,
                "project_id": project.public_id,
                "org_name": organization.name,
                "org_id": organization.public_id,
                "percent": percent,
                "period": period,
                "budget_kind": "daily" if period == SpendPeriod.DAY else "monthly",
                "period_label": _period_label(period, period_start),
                "spent": format_money(spent),
                "budget": format_money(budget),
                "denied": percent >= 100,
                "period_end": "00:00 UTC" if period == SpendPeriod.DAY else "the 1st of next month (UTC)",
                "settings_url": settings_url,
            },
            unique_key=f"consumption:{project.public_id}:{period}:{period_start.isoformat()}:{percent}",
            organization_ref=organization.public_id,
        )
        queued += email is not None
    return queued


CONSUMPTION_SWEEP_WINDOW = timedelta(hours=2)


def consumption_notifications_check(*, now: datetime | None = None) -> int:
    """The beat job: consumption_check for every spend counter that moved in the last two hours and
    may have reached a threshold (a budget is set, thresholds are chosen, at least 1 % is spent).
    The outbox key makes a second look send nothing twice; this catches a notice whose per-batch
    task was lost. Returns how many emails were queued."""
    since = (now or timezone.now()) - CONSUMPTION_SWEEP_WINDOW
    day = Q(period=SpendPeriod.DAY, project__daily_budget__isnull=False,
            spent__gte=F("project__daily_budget") / 100) & ~Q(project__daily_notify_percents=[])
    month = Q(period=SpendPeriod.MONTH, project__monthly_budget__isnull=False,
              spent__gte=F("project__monthly_budget") / 100) & ~Q(project__monthly_notify_percents=[])
    counters = (
        ProjectSpend.objects.filter(day | month, updated_at__gte=since, project__archived_at__isnull=True)
        .values_list("project_id", "period", "period_start")
        .order_by("project_id", "period", "period_start")
    )
    return sum(consumption_check(project_id=p, period=period, period_start=start) for p, period, start in counters)


def usage_notify(*, organization_ids: Iterable[int], periods: Iterable[tuple[int, str, str]]) -> None:
    """After an ingest batch commits: balance alerts of its organizations, then consumption
    notifications of its (project, period, period start) counters. Each check is its own
    transaction, so one failing does not hold back the others' emails."""
    for organization_id in sorted(set(organization_ids)):
        balance_alert_check(organization_id=organization_id)
    for project_id, period, start in sorted(set(periods)):
        consumption_check(project_id=project_id, period=period, period_start=date.fromisoformat(start))
