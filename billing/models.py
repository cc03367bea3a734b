"""Prices, the ledger and the cached balance, usage events, spend counters and hourly rollups.

Money columns keep 6 decimal places, usage costs (events, spend counters, rollups) are exact at 12;
the rounding rule lives in `billing/money.py`.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from orgs.models import Organization
from projects.models import APIKey, Project

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _money(**kwargs: object) -> models.DecimalField[Decimal, Decimal]:
    return models.DecimalField(max_digits=18, decimal_places=6, **kwargs)  # type: ignore[arg-type]


def _exact_cost(**kwargs: object) -> models.DecimalField[Decimal, Decimal]:
    """An exact usage cost or a sum of them: tokens x a 6-place price / 1e6 has 12 places."""
    return models.DecimalField(max_digits=28, decimal_places=12, **kwargs)  # type: ignore[arg-type]


class Price(models.Model):
    """The price of a model from `effective_from` on; a change is a new row, so history is kept."""

    model = models.CharField(max_length=100)
    input_per_mtok = models.DecimalField("input price per 1M tokens", max_digits=12, decimal_places=6)
    output_per_mtok = models.DecimalField("output price per 1M tokens", max_digits=12, decimal_places=6)
    effective_from = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["model", "effective_from"], name="price_unique_model_from"),
            models.CheckConstraint(
                condition=Q(input_per_mtok__gte=0) & Q(output_per_mtok__gte=0), name="price_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model} from {self.effective_from:%Y-%m-%d %H:%M}"


class BillingAccount(models.Model):
    """The organization's cached balance: it changes only with a ledger row, in the same transaction."""

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, primary_key=True, related_name="billing_account"
    )
    balance = _money(default=Decimal(0))
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Balance of {self.organization}"


class LedgerKind(models.TextChoices):
    TOPUP = "topup", "Top-up"
    USAGE = "usage", "Usage charge"
    ADJUSTMENT = "adjustment", "Adjustment"
    REFUND = "refund", "Refund"


class LedgerEntry(models.Model):
    """Append-only: a row is never updated or deleted. `amount` is signed (charges are negative)."""

    # PROTECT: the ledger is append-only; an organization with money history is never deleted.
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="ledger_entries")
    kind = models.CharField(max_length=16, choices=LedgerKind.choices)
    amount = _money()
    balance_after = _money()
    # Top-ups: the payment's reference (unique, so a repeated top-up is recognised). Usage: the batch.
    reference = models.CharField(max_length=100, blank=True)
    memo = models.CharField(max_length=200, blank=True)
    # Usage charges only: the UTC day of the events charged (what usage_reconcile compares per day).
    usage_date = models.DateField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        # Posting order: the order of the balance_after chain (rows are posted under the account's lock).
        ordering = ["-id"]
        verbose_name_plural = "ledger entries"
        constraints = [
            models.UniqueConstraint(fields=["reference"], condition=~Q(reference=""), name="ledger_unique_reference"),
        ]
        indexes = [
            models.Index(fields=["organization", "-id"], name="ledger_org_posted"),
            models.Index(fields=["organization", "kind", "-id"], name="ledger_org_kind_posted"),
            models.Index(
                fields=["organization", "usage_date"], condition=Q(kind="usage"), name="ledger_org_usage_date"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount} ({self.organization_id})"


class UsageBatch(models.Model):
    """One accepted ingest request. `folded_at` marks it folded into rollups (in the same transaction)."""

    received_at = models.DateTimeField(default=timezone.now)
    events = models.PositiveIntegerField(default=0)
    # The earliest occurred_at of its events: folding reads only the partitions from there on.
    first_occurred_at = models.DateTimeField(null=True, blank=True)
    folded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "usage batches"
        indexes = [models.Index(fields=["id"], condition=Q(folded_at__isnull=True), name="usagebatch_unfolded")]

    def __str__(self) -> str:
        return f"Batch {self.pk} ({self.events} events)"


class UsageEvent(models.Model):
    """One call as the gateway reported it.

    On PostgreSQL the table is range-partitioned by `occurred_at`, one partition per UTC month
    (`billing/partitions.py`), with primary key (id, occurred_at): a unique index there must hold
    the partition key, so `event_id` is made unique by `UsageEventKey` instead.
    """

    event_id = models.CharField(max_length=128)
    batch = models.ForeignKey(UsageBatch, on_delete=models.PROTECT, related_name="usage_events")
    # The composite indexes below serve lookups by organization or project: no separate FK index.
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, db_index=False, related_name="+")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, db_index=False, related_name="+")
    api_key = models.ForeignKey(APIKey, on_delete=models.CASCADE, related_name="+")
    model = models.CharField(max_length=100)
    input_tokens = models.PositiveBigIntegerField()
    output_tokens = models.PositiveBigIntegerField()
    cost = _exact_cost()
    occurred_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["organization", "occurred_at"], name="usageevent_org_occurred"),
            models.Index(fields=["project", "occurred_at"], name="usageevent_project_occurred"),
        ]

    def __str__(self) -> str:
        return self.event_id


class UsageEventKey(models.Model):
    """The idempotency record of an accepted event id, one table for every partition.

    `digest` fingerprints what was accepted (key, model, tokens, time): a re-send with the same
    digest is a duplicate, another digest a `conflicting_duplicate`. Rows live as long as a
    re-send can be accepted (`CONSOLE_USAGE_MAX_AGE_DAYS` plus a day), then are pruned.
    """

    event_id = models.CharField(max_length=128, primary_key=True)
    digest = models.BinaryField(max_length=16)
    occurred_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.event_id

    @staticmethod
    def digest_of(
        *, api_key_id: int, model: str, input_tokens: int, output_tokens: int, occurred_at: datetime
    ) -> bytes:
        micros = (occurred_at - _EPOCH) // timedelta(microseconds=1)
        text = f"{api_key_id}|{model}|{input_tokens}|{output_tokens}|{micros}"
        return hashlib.blake2b(text.encode(), digest_size=16).digest()


class SpendPeriod(models.TextChoices):
    DAY = "day", "Day"
    MONTH = "month", "Month"


class ProjectSpend(models.Model):
    """A project's spend in one UTC day or month, bumped by ingest in the charge's transaction.

    Keyed by period start, so a new day simply starts a new row: no reset job.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    period = models.CharField(max_length=5, choices=SpendPeriod.choices)
    period_start = models.DateField()
    spent = _exact_cost(default=Decimal(0))
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "period", "period_start"], name="projectspend_unique_period"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project_id} {self.period} {self.period_start}: {self.spent}"


class DailyUsageCost(models.Model):
    """An organization's exact usage cost of one UTC day so far: what the day's ledger rows round
    up once (billing/money.py `usage_charge`). Written by ingest under the account's lock."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, db_index=False, related_name="+")
    day = models.DateField()
    cost = _exact_cost(default=Decimal(0))

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "day"], name="dailyusagecost_unique_org_day"),
        ]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.day}: {self.cost}"


class UsageSums(models.Model):
    """What every rollup level adds up: calls, tokens and exact cost."""

    requests = models.PositiveBigIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cost = _exact_cost(default=Decimal(0))

    class Meta:
        abstract = True


class UsageRollup(UsageSums):
    """Usage per key (hence project and organization), model and UTC hour; what analytics read."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, db_index=False, related_name="+")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, db_index=False, related_name="+")
    api_key = models.ForeignKey(APIKey, on_delete=models.CASCADE, db_index=False, related_name="+")
    model = models.CharField(max_length=100)
    hour = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["api_key", "model", "hour"], name="usagerollup_unique_key_model_hour"),
        ]
        indexes = [
            models.Index(fields=["organization", "hour"], name="usagerollup_org_hour"),
            models.Index(fields=["project", "hour"], name="usagerollup_project_hour"),
        ]

    def __str__(self) -> str:
        return f"{self.api_key_id} {self.model} {self.hour:%Y-%m-%d %H}:00"


class UsageDailyRollup(UsageSums):
    """Usage per project, model and UTC day: the project's model breakdown and invoices' lines."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, db_index=False, related_name="+")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, db_index=False, related_name="+")
    model = models.CharField(max_length=100)
    day = models.DateField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "model", "day"], name="usagedaily_unique_project_model_day"),
        ]
        indexes = [models.Index(fields=["organization", "day"], name="usagedaily_org_day")]

    def __str__(self) -> str:
        return f"{self.project_id} {self.model} {self.day}"


class UsageProjectDailyRollup(UsageSums):
    """Usage per project and UTC day: the charts' days, the organization's project breakdown and the
    runway forecast. Its size grows with days x projects, never with keys, models, hours or events."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, db_index=False, related_name="+")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, db_index=False, related_name="+")
    day = models.DateField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "day"], name="usageprojectdaily_unique_project_day"),
        ]
        indexes = [models.Index(fields=["organization", "day"], name="usageprojectdaily_org_day")]

    def __str__(self) -> str:
        return f"{self.project_id} {self.day}"


class UsageModelDailyRollup(UsageSums):
    """Usage per organization, model and UTC day: the organization's model breakdown."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, db_index=False, related_name="+")
    model = models.CharField(max_length=100)
    day = models.DateField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "day", "model"],
                                    name="usagemodeldaily_unique_org_day_model"),
        ]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.model} {self.day}"


class UsageKeyDailyRollup(UsageSums):
    """Usage per API key and UTC day: the project pages' key breakdown."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, db_index=False, related_name="+")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, db_index=False, related_name="+")
    api_key = models.ForeignKey(APIKey, on_delete=models.CASCADE, db_index=False, related_name="+")
    day = models.DateField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["api_key", "day"], name="usagekeydaily_unique_key_day")]
        indexes = [models.Index(fields=["project", "day"], name="usagekeydaily_project_day")]

    def __str__(self) -> str:
        return f"{self.api_key_id} {self.day}"


# --- balance alerts ------------------------------------------------------------------------------


def _default_alert_threshold() -> Decimal:
    return Decimal(settings.CONSOLE_BALANCE_ALERT_DEFAULT)


class AlertState(models.TextChoices):
    ARMED = "armed", "Armed"
    FIRED = "fired", "Fired"


MAX_ALERT_RECIPIENTS = 5


class BalanceAlert(models.Model):
    """An organization's low-balance alert: armed until the balance drops below the threshold,
    fired until it is back at or above it. `crossings` numbers the firings (the email's key)."""

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, primary_key=True, related_name="balance_alert"
    )
    enabled = models.BooleanField(default=True)
    threshold = models.DecimalField(max_digits=14, decimal_places=2, default=_default_alert_threshold)
    extra_recipients = models.JSONField(default=list, blank=True)
    state = models.CharField(max_length=8, choices=AlertState.choices, default=AlertState.ARMED)
    fired_at = models.DateTimeField(null=True, blank=True)
    crossings = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(threshold__gte=0), name="balancealert_threshold_not_negative"),
        ]

    def __str__(self) -> str:
        return f"Balance alert of {self.organization_id} ({self.state})"


# --- invoices ------------------------------------------------------------------------------------


class InvoiceKind(models.TextChoices):
    TOPUP = "topup", "Top-up"
    USAGE = "usage", "Monthly usage"


class InvoiceStatus(models.TextChoices):
    REQUESTED = "requested", "Requested"
    ISSUED = "issued", "Issued"
    REJECTED = "rejected", "Rejected"


class InvoiceRequest(models.Model):
    """An org admin's request for an invoice of one top-up or of one calendar month of usage,
    with the billing details to print (prefilled from the organization, editable per request)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invoice_requests")
    kind = models.CharField(max_length=8, choices=InvoiceKind.choices)
    ledger_entry = models.ForeignKey(
        LedgerEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="invoice_requests"
    )
    month = models.DateField(null=True, blank=True, help_text="First day of the invoiced month (usage).")
    billing_name = models.CharField("billed to", max_length=200)
    billing_address = models.TextField("address", max_length=500, blank=True)
    billing_country = models.CharField("country", max_length=100, blank=True)
    billing_tax_number = models.CharField("tax / registration number", max_length=50, blank=True)
    billing_email = models.EmailField("billing email", max_length=254)
    status = models.CharField(max_length=10, choices=InvoiceStatus.choices, default=InvoiceStatus.REQUESTED)
    rejection_reason = models.CharField(max_length=500, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind="topup", ledger_entry__isnull=False, month__isnull=True)
                           | Q(kind="usage", ledger_entry__isnull=True, month__isnull=False)),
                name="invoicerequest_subject_matches_kind",
            ),
            # One live request (requested or issued) per top-up and per month: a rejected one may be redone.
            models.UniqueConstraint(
                fields=["ledger_entry"], condition=~Q(status="rejected") & Q(ledger_entry__isnull=False),
                name="invoicerequest_one_live_per_topup",
            ),
            models.UniqueConstraint(
                fields=["organization", "month"], condition=~Q(status="rejected") & Q(month__isnull=False),
                name="invoicerequest_one_live_per_month",
            ),
        ]

    def __str__(self) -> str:
        return f"Invoice request {self.pk} ({self.subject})"

    @property
    def subject(self) -> str:
        if self.kind == InvoiceKind.USAGE and self.month:
            return f"Usage {self.month:%B %Y}"
        return f"Top-up {self.ledger_entry.reference}" if self.ledger_entry else "Top-up"


class InvoiceCounter(models.Model):
    """The last number issued in a year; locked while issuing, so numbers are gapless."""

    year = models.PositiveIntegerField(primary_key=True)
    last = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.year}: {self.last}"


class Invoice(models.Model):
    """An issued invoice: never changed after issuing (a correction is a new invoice).

    The PDF is kept in the database, not in (public) media: only the download view serves it. It is
    rendered after the number is committed (a task), so it is empty while the invoice is "being prepared".
    """

    request = models.OneToOneField(InvoiceRequest, on_delete=models.PROTECT, related_name="invoice")
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="invoices")
    number = models.CharField(max_length=32, unique=True)
    year = models.PositiveIntegerField()
    sequence = models.PositiveIntegerField()
    issued_at = models.DateTimeField()
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    currency = models.CharField(max_length=3)
    total = models.DecimalField(max_digits=14, decimal_places=2)
    pdf = models.BinaryField(editable=False, null=True)  # None until the PDF task has rendered it

    class Meta:
        ordering = ["-issued_at"]
        constraints = [models.UniqueConstraint(fields=["year", "sequence"], name="invoice_unique_year_sequence")]

    def __str__(self) -> str:
        return self.number


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="lines")
    position = models.PositiveSmallIntegerField()
    description = models.CharField(max_length=300)
    quantity = models.CharField(max_length=100, blank=True)  # e.g. "1,204 requests · 3.2M tokens"
    amount = models.DecimalField(max_digits=14, decimal_places=2)

    class Meta:
        ordering = ["invoice", "position"]

    def __str__(self) -> str:
        return f"{self.invoice_id} #{self.position}"


# Card payments live in their own module (one concept per module); importing them here makes them
# models of this app.
from .payment_models import CardPayment, PaymentKind, PaymentProfile, PaymentStatus, RechargeState  # noqa: E402, F401
