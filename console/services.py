"""The email outbox: enqueue in the caller's transaction, deliver exactly once, retry what failed.

Every email of the console is an ``OutboxEmail`` row written by ``email_enqueue`` in the same
transaction as the change that causes it (a fired alert, a new invitation), under a unique key,
so a rolled-back change sends nothing and a repeated decision sends one email. The row is sent by
the Celery task ``console.email_send`` once the transaction commits.

Templates live in ``templates/email/<template>/``: ``subject.txt``, ``body.txt`` and optionally
``body.html`` (which may extend ``email/base.html``). The ``.txt`` files are rendered without
HTML escaping. ``site_url`` (``CONSOLE_SITE_URL``) and ``subject_prefix``
(``ACCOUNT_EMAIL_SUBJECT_PREFIX``, which the console's own subjects start with) are in every context.
Bad input (recipients, key, sensitive keys) is a ``console.errors.DomainError``.

Secrets: context keys listed in ``sensitive`` (e.g. an invitation link) are blanked once the
email is sent, so the outbox does not keep a usable secret after it has done its job.

Attachments are rendered at send time, like the body: the row names a kind and an object id
(``attachments=[("card_receipt", "42")]``), and the renderer an app registered for that kind with
``email_attachment_register`` (in its ``AppConfig.ready()``; ``console`` imports no app) makes the
file. A renderer answering None (the object is gone) sends the email without that file.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import urlparse

import structlog
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q
from django.template import Context, Engine, TemplateDoesNotExist, TemplateSyntaxError
from django.urls import reverse
from django.utils import timezone
from django.utils.html import strip_tags

from console.errors import DomainError
from console.models import OutboxEmail

logger = structlog.get_logger(__name__)

# The template of emails rendered elsewhere (allauth's): context {"subject", "text", "html"}.
PRERENDERED = "prerendered"
MAX_RECIPIENTS = 50
RETRY_BATCH = 500


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mimetype: str


AttachmentRenderer = Callable[[str], Attachment | None]
_ATTACHMENT_RENDERERS: dict[str, AttachmentRenderer] = {}


class AttachmentRenderError(Exception):
    """A registered renderer failed (the email is tried again later)."""


class AttachmentKindUnknown(LookupError):
    """No renderer for the row's attachment kind (the email can never be sent as written)."""


def email_attachment_register(kind: str, renderer: AttachmentRenderer) -> None:
    """Let emails carry attachments of `kind`: `renderer(ref)` makes the file when the email is sent."""
    _ATTACHMENT_RENDERERS[kind] = renderer


@dataclass(frozen=True)
class Delivery:
    """What one delivery attempt did; ``retry_in`` (seconds) is set when the task should retry."""

    outcome: Literal["sent", "skipped", "retry", "failed"]
    retry_in: int | None = None


def email_addresses_clean(
    addresses: Sequence[str], *, limit: int = MAX_RECIPIENTS, too_many: str = "", field: str | None = None
) -> list[str]:
    """The one rule for a list of email addresses: each valid, blanks skipped, duplicates (any case)
    dropped keeping the first spelling, at most `limit`. A DomainError (code "invalid_recipients")
    names the first bad address; `too_many` replaces the message when there are too many."""
    if isinstance(addresses, str):
        raise DomainError("Recipients must be a list of addresses, not one string.", code="invalid_recipients")
    recipients: list[str] = []
    for address in (a.strip() for a in addresses):
        if not address:
            continue
        try:
            validate_email(address)
        except ValidationError:
            raise DomainError(
                f"“{address}” is not a valid email address.", code="invalid_recipients", field=field
            ) from None
        if address.lower() not in {r.lower() for r in recipients}:
            recipients.append(address)
    if len(recipients) > limit:
        raise DomainError(
            too_many or f"An email may have at most {limit} recipients.", code="invalid_recipients", field=field
        )
    return recipients


def _render(template: str, name: str, context: Mapping[str, Any]) -> str:
    """Render ``email/<template>/<name>``; text files are not HTML-escaped (they are not HTML)."""
    compiled = Engine.get_default().get_template(f"email/{template}/{name}")
    return compiled.render(Context(dict(context), autoescape=name.endswith(".html")))


def _check_templates(template: str) -> None:
    engine = Engine.get_default()
    for name in ("subject.txt", "body.txt"):
        engine.get_template(f"email/{template}/{name}")


def absolute_url(viewname: str, **kwargs: Any) -> str:
    """A console URL for emails and documents: CONSOLE_SITE_URL + the reversed path."""
    return settings.CONSOLE_SITE_URL.rstrip("/") + reverse(viewname, kwargs=kwargs)


def _schedule_send(email_id: int) -> None:
    from console.tasks import email_send  # the task module imports this one

    # robust: a broker that is down must not fail the committed request; the row stays pending
    # and the beat job `console.email_outbox_retry` enqueues it again.
    transaction.on_commit(lambda: email_send.delay(email_id), robust=True)


@transaction.atomic
def email_enqueue(
    *,
    to: Sequence[str],
    template: str,
    context: Mapping[str, Any],
    unique_key: str,
    organization_ref: str = "",
    sensitive: Sequence[str] = (),
    attachments: Sequence[tuple[str, str]] = (),
) -> OutboxEmail | None:
    """Queue one email under ``unique_key``; it is sent after the caller's transaction commits.

    The same key twice, even from concurrent transactions, makes one row: the later call gets
    None. Bad input (recipients, unknown template or attachment kind, key) raises before anything
    is written. ``attachments``: (kind, object id) pairs, rendered when the email is sent.
    """
    recipients = email_addresses_clean(to)
    if not recipients:
        raise DomainError("An email needs at least one recipient.", code="invalid_recipients")
    if not unique_key or len(unique_key) > OutboxEmail._meta.get_field("unique_key").max_length:  # type: ignore[operator]
        raise DomainError("The unique key must be 1 to 255 characters.", code="invalid_unique_key")
    missing = set(sensitive) - set(context)
    if missing:
        raise DomainError(f"Sensitive keys not in the context: {sorted(missing)}.", code="invalid_sensitive_keys")
    unknown = sorted({kind for kind, _ref in attachments} - set(_ATTACHMENT_RENDERERS))
    if unknown:
        raise DomainError(f"Unknown attachment kinds: {unknown}.", code="invalid_attachments")
    # An unknown template fails here, in the caller, not later in a worker.
    _check_templates(template)
    # get_or_create under a unique constraint: a concurrent insert of the same key waits for the
    # other transaction and then finds its row (INSERT ... ON CONFLICT DO NOTHING semantics).
    email, created = OutboxEmail.objects.get_or_create(
        unique_key=unique_key,
        defaults={
            "to": recipients,
            "template": template,
            "context": dict(context),
            "sensitive_keys": list(sensitive),
            "organization_ref": organization_ref,
            "attachments": [{"kind": kind, "ref": str(ref)} for kind, ref in attachments],
        },
    )
    if not created:
        return None
    _schedule_send(email.pk)
    return email


def email_enqueue_message(*, message: EmailMessage, unique_key: str) -> OutboxEmail | None:
    """Queue an email rendered elsewhere (allauth's): subject and bodies are its context.

    Both bodies may carry a secret link (verification, password reset), so they are sensitive.
    """
    text, html = str(message.body), ""
    if message.content_subtype == "html":
        text, html = strip_tags(text), text
    elif isinstance(message, EmailMultiAlternatives):
        html = next((str(content) for content, mimetype in message.alternatives if mimetype == "text/html"), "")
    return email_enqueue(
        to=list(message.to),
        template=PRERENDERED,
        context={
            "subject": str(message.subject),
            "text": text,
            "html": html,
            **({"reply_to": list(message.reply_to)} if message.reply_to else {}),
        },
        unique_key=unique_key,
        sensitive=("text", "html"),
    )


def _message(email: OutboxEmail) -> EmailMultiAlternatives:
    context = {
        **email.context,
        "site_url": settings.CONSOLE_SITE_URL,
        "subject_prefix": settings.ACCOUNT_EMAIL_SUBJECT_PREFIX,
    }
    subject = " ".join(_render(email.template, "subject.txt", context).split())
    text = _render(email.template, "body.txt", context).strip()
    try:
        html = _render(email.template, "body.html", context).strip()
    except TemplateDoesNotExist:
        html = ""
    domain = urlparse(settings.CONSOLE_SITE_URL).hostname or "localhost"
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        to=email.to,
        reply_to=email.context.get("reply_to") or None,
        headers={
            # One Message-ID per row: should a send ever be repeated (a crash between the SMTP
            # server's "250" and our commit), mail systems can tell it is the same message.
            "Message-ID": f"<outbox.{email.pk}.{email.created_at:%Y%m%d%H%M%S}@{domain}>",
            "Auto-Submitted": "auto-generated",
        },
    )
    if html:
        message.attach_alternative(html, "text/html")
    for item in email.attachments:
        attachment = _render_attachment(str(item["kind"]), str(item["ref"]))
        if attachment is None:
            logger.warning("email_attachment_gone", email_id=email.pk, kind=item["kind"], ref=item["ref"])
            continue
        message.attach(attachment.filename, attachment.content, attachment.mimetype)
    return message


def _render_attachment(kind: str, ref: str) -> Attachment | None:
    renderer = _ATTACHMENT_RENDERERS.get(kind)
    if renderer is None:  # the app that registered it is gone: sending can never succeed
        raise AttachmentKindUnknown(f"No renderer is registered for attachments of kind “{kind}”.")
    try:
        return renderer(ref)
    except Exception as exc:  # whatever the app's renderer raised: try again later, with a backoff
        raise AttachmentRenderError(f"{kind} {ref}: {exc.__class__.__name__}: {exc}") from exc


def _is_permanent(exc: Exception) -> bool:
    """The message or its recipients were refused for good (5xx); anything else may pass later."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    return isinstance(exc, smtplib.SMTPDataError) and exc.smtp_code >= 500


def _backoff(attempts: int) -> int:
    delay = settings.CONSOLE_EMAIL_RETRY_BACKOFF * 2 ** (attempts - 1)
    return int(min(delay, settings.CONSOLE_EMAIL_RETRY_BACKOFF_MAX))


def _record_failure(email: OutboxEmail, exc: Exception, *, permanent: bool) -> Delivery:
    email.last_error = f"{exc.__class__.__name__}: {exc}"[:2000]
    delivery: Delivery
    if permanent or email.attempts >= settings.CONSOLE_EMAIL_MAX_ATTEMPTS:
        email.status = OutboxEmail.Status.FAILED
        delivery = Delivery("failed")
    else:
        delivery = Delivery("retry", retry_in=_backoff(email.attempts))
        email.next_attempt_at = timezone.now() + timedelta(seconds=delivery.retry_in or 0)
    email.save(update_fields=["attempts", "last_error", "status", "next_attempt_at"])
    logger.warning(
        "email_not_sent", email_id=email.pk, template=email.template, attempts=email.attempts,
        outcome=delivery.outcome, error=email.last_error,
    )
    return delivery


def email_deliver(*, email_id: int) -> Delivery:
    """Send one pending outbox email; skip it when it is sent, failed, gone or being sent.

    The row is locked across the SMTP call and marked sent in that same transaction, so it is
    never sent twice. SMTP errors leave it pending with a backoff (or failed when permanent or
    out of attempts); sensitive context keys are blanked once it is sent.
    """
    with transaction.atomic():
        email = (
            OutboxEmail.objects.select_for_update(skip_locked=True)
            .filter(pk=email_id, status=OutboxEmail.Status.PENDING)
            .first()
        )
        if email is None:
            return Delivery("skipped")
        email.attempts += 1
        try:
            # Attachments too are rendered here, under the outbox row's lock only: it is what
            # marks the email as being sent.
            message = _message(email)
        except (TemplateDoesNotExist, TemplateSyntaxError, AttachmentKindUnknown) as exc:
            return _record_failure(email, exc, permanent=True)
        except AttachmentRenderError as exc:
            return _record_failure(email, exc, permanent=False)
        try:
            message.send()
        except (smtplib.SMTPException, OSError) as exc:
            return _record_failure(email, exc, permanent=_is_permanent(exc))
        email.status = OutboxEmail.Status.SENT
        email.sent_at = timezone.now()
        email.context = {key: ("" if key in email.sensitive_keys else value) for key, value in email.context.items()}
        email.save(update_fields=["attempts", "status", "sent_at", "context"])
    logger.info("email_sent", email_id=email.pk, template=email.template, attempts=email.attempts)
    return Delivery("sent")


@transaction.atomic
def email_outbox_retry(*, include_failed: bool) -> int:
    """Re-enqueue stuck pending emails (nobody tried them for CONSOLE_EMAIL_STUCK_AFTER seconds)
    and, with ``include_failed``, failed ones, which start a new cycle of attempts.

    Rows being sent right now are locked and skipped. Returns how many were re-enqueued.
    """
    now = timezone.now()
    stuck_since = now - timedelta(seconds=settings.CONSOLE_EMAIL_STUCK_AFTER)
    due = Q(status=OutboxEmail.Status.PENDING, next_attempt_at__lt=stuck_since)
    if include_failed:
        due |= Q(status=OutboxEmail.Status.FAILED)
    ids = list(
        OutboxEmail.objects.select_for_update(skip_locked=True)
        .filter(due)
        .order_by("pk")
        .values_list("pk", flat=True)[:RETRY_BATCH]
    )
    OutboxEmail.objects.filter(pk__in=ids, status=OutboxEmail.Status.FAILED).update(
        status=OutboxEmail.Status.PENDING, attempts=0
    )
    OutboxEmail.objects.filter(pk__in=ids).update(next_attempt_at=now)
    for email_id in ids:
        _schedule_send(email_id)
    if ids:
        logger.info("email_outbox_requeued", count=len(ids), include_failed=include_failed)
    return len(ids)
