"""The email outbox end to end: enqueue, the Celery task, a real SMTP server process, retries."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.template import TemplateDoesNotExist
from django.utils import timezone

from console.errors import DomainError
from console.models import OutboxEmail
from console.services import email_deliver, email_enqueue, email_outbox_retry
from console.tasks import email_outbox_retry_stuck, email_send

pytestmark = pytest.mark.usefixtures("test_templates")


def notice(**overrides: Any) -> dict[str, Any]:
    """email_enqueue arguments for the test notice; the link is a secret."""
    return {
        "to": ["billing@acme.test"],
        "template": "test_notice",
        "context": {"org_name": "Acme & Co", "balance": "$4.50", "link": "https://console.test/invite/inv_secret123"},
        "unique_key": "test:notice:1",
        "sensitive": ["link"],
        **overrides,
    }


def run_in_threads(count: int, target: Callable[[int], None]) -> None:
    """Run target(i) in `count` threads released at once, each with its own DB connection."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            target(i)
        except BaseException as exc:  # re-raised in the test thread below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors


@pytest.mark.django_db
def test_an_enqueued_email_reaches_the_smtp_server_once_with_text_and_html(smtp, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        email = email_enqueue(**notice(), organization_ref="org-acme")

    [received] = smtp.messages()
    assert received.envelope_to == ["billing@acme.test"]
    assert received.subject == "Notice for Acme & Co"
    assert "Hello Acme & Co," in received.text
    assert "Open https://console.test/invite/inv_secret123 to continue." in received.text
    assert "Hello Acme &amp; Co," in received.html  # HTML is escaped, text is not
    assert 'href="https://console.test/invite/inv_secret123"' in received.html
    assert "Organization Console" in received.html  # the shared email layout
    assert received.message["Auto-Submitted"] == "auto-generated"

    email.refresh_from_db()
    assert (email.status, email.attempts, email.organization_ref) == ("sent", 1, "org-acme")
    assert email.sent_at is not None
    # The secret is blanked once sent; the rest of the context stays for the record.
    assert email.context == {"org_name": "Acme & Co", "balance": "$4.50", "link": ""}


@pytest.mark.django_db
def test_a_text_only_template_sends_a_plain_message(smtp, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        email_enqueue(to=["a@acme.test"], template="text_only", context={"what": "<tea>"}, unique_key="t:1")
    [received] = smtp.messages()
    assert received.subject == "Plain <tea>"
    assert received.text.strip() == "Only text: <tea>"
    assert received.html == ""
    assert not received.message.is_multipart()


@pytest.fixture
def notes_attachments() -> Any:
    """A registered attachment kind "test_note": ref "gone" renders nothing, "broken" raises."""
    from console.services import _ATTACHMENT_RENDERERS, Attachment, email_attachment_register

    def render(ref: str) -> Attachment | None:
        if ref == "broken":
            raise OSError("the renderer's disk is full")
        return None if ref == "gone" else Attachment(f"note-{ref}.txt", f"note {ref}".encode(), "text/plain")

    email_attachment_register("test_note", render)
    yield
    _ATTACHMENT_RENDERERS.pop("test_note")


@pytest.mark.django_db
def test_attachments_are_rendered_when_the_email_is_sent(smtp, notes_attachments, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        email_enqueue(**notice(attachments=[("test_note", "7"), ("test_note", "gone")]))
    [received] = smtp.messages()
    [note] = received.message.iter_attachments()  # the one that is gone is left out
    assert (note.get_filename(), note.get_content()) == ("note-7.txt", "note 7")
    assert "Hello Acme & Co," in received.text


@pytest.mark.django_db
def test_an_unknown_attachment_kind_is_refused_and_a_failing_renderer_is_retried(
    smtp, notes_attachments, django_capture_on_commit_callbacks
):
    with pytest.raises(DomainError) as refused:
        email_enqueue(**notice(attachments=[("nonsense", "1")]))
    assert refused.value.code == "invalid_attachments" and not OutboxEmail.objects.exists()
    with django_capture_on_commit_callbacks(execute=False):
        email = email_enqueue(**notice(attachments=[("test_note", "broken")]))
    assert email is not None
    assert email_deliver(email_id=email.pk).outcome == "retry"
    email.refresh_from_db()
    assert email.status == "pending" and "disk is full" in email.last_error and smtp.messages() == []


@pytest.mark.django_db
def test_nothing_is_queued_or_sent_when_the_callers_transaction_rolls_back(smtp, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        email_enqueue(**notice())
        raise RuntimeError("the change that caused the email failed")
    assert not OutboxEmail.objects.exists()
    assert smtp.messages() == []


@pytest.mark.django_db
def test_the_same_unique_key_twice_makes_one_email(smtp, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = email_enqueue(**notice())
        second = email_enqueue(**notice(context={"org_name": "Other", "balance": "$0", "link": "x"}))
    assert first is not None
    assert second is None
    assert OutboxEmail.objects.count() == 1
    [received] = smtp.messages()
    assert received.subject == "Notice for Acme & Co"


@pytest.mark.django_db(transaction=True)
def test_concurrent_enqueues_of_one_key_make_one_email(smtp):
    results: list[OutboxEmail | None] = []

    def enqueue(_: int) -> None:
        with transaction.atomic():
            results.append(email_enqueue(**notice()))

    run_in_threads(8, enqueue)

    assert len([r for r in results if r is not None]) == 1
    assert OutboxEmail.objects.count() == 1
    assert len(smtp.messages()) == 1


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"to": []}, "at least one recipient"),
        ({"to": ["not-an-address"]}, "is not a valid email address"),
        ({"to": "billing@acme.test"}, "a list of addresses"),
        ({"unique_key": ""}, "unique key"),
        ({"unique_key": "k" * 256}, "unique key"),
        ({"sensitive": ["token"]}, "Sensitive keys not in the context"),
    ],
)
@pytest.mark.django_db
def test_bad_input_is_refused_with_a_clear_message_and_writes_nothing(overrides, error):
    with pytest.raises(DomainError, match=error):
        email_enqueue(**notice(**overrides))
    assert not OutboxEmail.objects.exists()


@pytest.mark.django_db
def test_an_unknown_template_is_refused_at_enqueue_time():
    with pytest.raises(TemplateDoesNotExist):
        email_enqueue(**notice(template="no_such_email"))
    assert not OutboxEmail.objects.exists()


@pytest.mark.django_db
def test_server_refuses_first_then_the_task_retries_and_delivers_once(smtp, django_capture_on_commit_callbacks):
    smtp.fail_next(1, "451 4.3.0 Temporary failure, try again later")
    with django_capture_on_commit_callbacks(execute=True):
        email = email_enqueue(**notice())

    # Tests run Celery eagerly: the retry runs at once instead of after its countdown.
    [received] = smtp.messages()
    assert "inv_secret123" in received.text  # the secret was kept for the retry
    email.refresh_from_db()
    assert (email.status, email.attempts) == ("sent", 2)
    assert "451" in email.last_error


@pytest.mark.django_db
def test_a_temporary_error_leaves_the_email_pending_with_exponential_backoff(smtp, settings):
    settings.CONSOLE_EMAIL_RETRY_BACKOFF = 60
    email = OutboxEmail.objects.create(unique_key="k", to=["a@acme.test"], template="text_only", context={"what": "x"})
    smtp.fail_next(2)

    first = email_deliver(email_id=email.pk)
    second = email_deliver(email_id=email.pk)
    email.refresh_from_db()
    assert (first.outcome, first.retry_in, second.retry_in) == ("retry", 60, 120)
    assert email.status == "pending"
    assert email.next_attempt_at > timezone.now() + timedelta(seconds=110)
    assert smtp.messages() == []

    assert email_deliver(email_id=email.pk).outcome == "sent"
    assert len(smtp.messages()) == 1


@pytest.mark.django_db
def test_the_email_fails_after_the_last_attempt(smtp, settings, django_capture_on_commit_callbacks):
    settings.CONSOLE_EMAIL_MAX_ATTEMPTS = 3
    smtp.fail_next(10)
    with django_capture_on_commit_callbacks(execute=True):
        email = email_enqueue(**notice())
    email.refresh_from_db()
    assert (email.status, email.attempts) == ("failed", 3)
    assert smtp.messages() == []


@pytest.mark.django_db
def test_a_refused_recipient_fails_at_once_and_email_outbox_retry_resends_it(
    smtp, django_capture_on_commit_callbacks, capsys
):
    smtp.fail_next(1, "550 5.1.1 Mailbox unavailable")
    with django_capture_on_commit_callbacks(execute=True):
        email = email_enqueue(**notice())
    email.refresh_from_db()
    assert (email.status, email.attempts) == ("failed", 1)  # a 5xx is not retried by itself
    assert "550" in email.last_error

    with django_capture_on_commit_callbacks(execute=True):
        call_command("email_outbox_retry")
    assert "Re-enqueued 1 email." in capsys.readouterr().out
    assert len(smtp.messages()) == 1
    email.refresh_from_db()
    assert (email.status, email.attempts) == ("sent", 1)

    with django_capture_on_commit_callbacks(execute=True):
        call_command("email_outbox_retry")
    assert "Re-enqueued 0 emails." in capsys.readouterr().out
    assert len(smtp.messages()) == 1


@pytest.mark.django_db
def test_running_the_send_task_again_for_a_sent_email_sends_nothing(smtp, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        email = email_enqueue(**notice())
    email_send.delay(email.pk)
    email_send.delay(email.pk)
    assert len(smtp.messages()) == 1
    email.refresh_from_db()
    assert email.attempts == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_send_tasks_for_one_email_send_it_once(smtp):
    email = OutboxEmail.objects.create(unique_key="k", to=["a@acme.test"], template="text_only", context={"what": "x"})
    smtp.delay(0.3)  # the first sender holds the row lock while the others arrive
    outcomes: list[str] = []

    run_in_threads(4, lambda _: outcomes.append(email_deliver(email_id=email.pk).outcome))

    assert sorted(outcomes) == ["sent", "skipped", "skipped", "skipped"]
    assert len(smtp.messages()) == 1


@pytest.mark.django_db
def test_the_beat_job_requeues_stuck_pending_emails_only(smtp, settings, django_capture_on_commit_callbacks):
    settings.CONSOLE_EMAIL_STUCK_AFTER = 600
    long_ago = timezone.now() - timedelta(hours=1)
    make = OutboxEmail.objects.create
    stuck = make(unique_key="stuck", to=["a@acme.test"], template="text_only", context={"what": "stuck"})
    OutboxEmail.objects.filter(pk=stuck.pk).update(next_attempt_at=long_ago)  # its task was lost
    make(unique_key="fresh", to=["a@acme.test"], template="text_only", context={"what": "fresh"})
    make(unique_key="failed", to=["a@acme.test"], template="text_only", context={"what": "f"}, status="failed")

    with django_capture_on_commit_callbacks(execute=True):
        email_outbox_retry_stuck.delay()

    assert [m.subject for m in smtp.messages()] == ["Plain stuck"]
    # A fresh email has its own task coming; a failed one waits for a human.
    statuses = dict(OutboxEmail.objects.values_list("unique_key", "status"))
    assert statuses == {"stuck": "sent", "fresh": "pending", "failed": "failed"}


@pytest.mark.django_db
def test_email_outbox_retry_returns_how_many_it_requeued(smtp, django_capture_on_commit_callbacks):
    OutboxEmail.objects.create(unique_key="a", to=["a@acme.test"], template="text_only", status="failed")
    OutboxEmail.objects.create(unique_key="b", to=["b@acme.test"], template="text_only", status="sent")
    with django_capture_on_commit_callbacks(execute=True):
        assert email_outbox_retry(include_failed=True) == 1
    assert [m.envelope_to for m in smtp.messages()] == [["a@acme.test"]]


@pytest.mark.django_db
def test_a_template_removed_after_enqueue_fails_the_email_without_retrying(smtp):
    email = OutboxEmail.objects.create(unique_key="k", to=["a@acme.test"], template="removed_since")
    assert email_deliver(email_id=email.pk).outcome == "failed"
    email.refresh_from_db()
    assert email.status == "failed"
    assert "TemplateDoesNotExist" in email.last_error
    assert smtp.messages() == []


@pytest.mark.django_db
def test_the_send_task_returns_quietly_for_a_deleted_email(smtp):
    email_send.delay(987654)
    assert smtp.messages() == []


@pytest.mark.django_db
def test_staff_see_the_outbox_in_the_admin_without_the_secrets(client):
    from console.tests.factories import UserFactory

    email = OutboxEmail.objects.create(
        unique_key="k", to=["a@acme.test"], template="test_notice", context={"link": "inv_secret123"},
        status="failed", last_error="SMTPDataError: (550, b'Mailbox unavailable')",
    )
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    listing = client.get("/admin/console/outboxemail/?status__exact=failed").content.decode()
    assert "test_notice" in listing and "a@acme.test" in listing
    assert "/admin/console/outboxemail/add/" not in listing  # rows come only from the services
    assert "a@acme.test" in client.get("/admin/console/outboxemail/?q=acme.test").content.decode()
    detail = client.get(f"/admin/console/outboxemail/{email.pk}/change/").content.decode()
    assert "Mailbox unavailable" in detail
    assert "inv_secret123" not in detail
