"""Invoices: requested by org admins, issued by staff (gapless numbers, PDF), downloaded by admins."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, transaction
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone
from pypdf import PdfReader

from billing.models import (
    Invoice,
    InvoiceCounter,
    InvoiceKind,
    InvoiceRequest,
    InvoiceStatus,
    LedgerEntry,
    LedgerKind,
)
from billing.services.invoices import invoice_issue, invoice_request_create
from billing.services.ledger import ledger_post
from billing.tests.factories import ProjectFactory, make_api_key, rollup
from console.tests.factories import UserFactory
from console.tests.test_outbox import run_in_threads
from orgs.models import Membership, Role
from orgs.tests.factories import MembershipFactory, OrganizationFactory

DETAILS = {"billing_name": "Acme GmbH", "billing_address": "1 Main St\nBerlin", "billing_country": "Germany",
           "billing_tax_number": "DE123", "billing_email": "ap@acme.test"}


def topup(org, amount="25.00", reference=None) -> LedgerEntry:
    return ledger_post(organization=org, kind=LedgerKind.TOPUP, amount=Decimal(amount),
                       reference=reference or f"pay-{org.pk}-{amount}", actor=None).entry


def admin_of(org):
    membership = Membership.objects.admins().filter(organization=org).select_related("user").first()
    return (membership or MembershipFactory(organization=org, role=Role.ADMIN)).user


def request_topup_invoice(org, entry=None) -> InvoiceRequest:
    return invoice_request_create(organization=org, actor=admin_of(org), kind=InvoiceKind.TOPUP,
                                  ledger_entry=entry or topup(org), details=DETAILS)


def issue(request_id: int) -> Invoice:
    """Issue as staff do, with the after-commit PDF task run (as the worker would) before returning."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        invoice = invoice_issue(request_id=request_id, actor=None)
    invoice.refresh_from_db()
    return invoice


def pdf_text(invoice: Invoice) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(bytes(invoice.pdf))).pages)


def last_month() -> date:
    return (timezone.now().astimezone(UTC).date().replace(day=1) - timedelta(days=1)).replace(day=1)


@pytest.mark.django_db
class TestRequesting:
    def test_the_form_is_prefilled_from_the_organization_information(self, client_as, org):
        org.legal_address, org.tax_number = "9 Harbour Rd", "GB999"
        org.save()
        entry = topup(org)
        page = client_as("admin").get(reverse("billing:invoice_request", args=[org.public_id])).content.decode()
        assert f'value="{org.name}"' in page and f'value="{org.registered_email}"' in page
        assert "9 Harbour Rd" in page and 'value="GB999"' in page
        assert entry.reference in page
        assert "Request invoice" in page

    @pytest.mark.parametrize(("role", "status"), [("member", 403), ("outsider", 404), ("anonymous", 302)])
    def test_only_admins_request_invoices(self, client_as, org, role, status):
        entry = topup(org)
        response = client_as(role).post(reverse("billing:invoice_request", args=[org.public_id]),
                                        {"kind": "topup", "ledger_entry": entry.pk, **DETAILS})
        assert response.status_code == status
        assert not InvoiceRequest.objects.exists()

    def test_an_admin_requests_a_topup_invoice_with_edited_details(self, client_as, org):
        entry = topup(org)
        client = client_as("admin")
        response = client.post(reverse("billing:invoice_request", args=[org.public_id]),
                               {"kind": "topup", "ledger_entry": entry.pk, **DETAILS}, follow=True)
        page = response.content.decode()
        assert "Invoice requested." in page
        assert f"Top-up {entry.reference}" in page and "Requested" in page
        request = InvoiceRequest.objects.get()
        assert (request.billing_name, request.billing_email, request.requested_by) == (
            "Acme GmbH", "ap@acme.test", client.user)

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            ({"kind": "topup"}, "Choose the top-up to invoice."),
            ({"kind": "usage"}, "Choose the month to invoice."),
            ({"kind": "topup", "billing_email": "nope"}, "Enter a valid email address."),
            ({"kind": "topup", "billing_name": ""}, "This field is required."),
        ],
    )
    def test_bad_input_is_explained_and_creates_nothing(self, client_as, org, data, message):
        entry = topup(org)
        form = {**DETAILS, "ledger_entry": entry.pk, **data}
        if data.get("kind") == "topup" and "ledger_entry" not in data and len(data) == 1:
            form.pop("ledger_entry")
        response = client_as("admin").post(reverse("billing:invoice_request", args=[org.public_id]), form)
        assert response.status_code == 200
        assert message in response.content.decode()
        assert not InvoiceRequest.objects.exists()

    def test_another_organizations_topup_cannot_be_invoiced(self, client_as, org):
        other = topup(OrganizationFactory())
        response = client_as("admin").post(reverse("billing:invoice_request", args=[org.public_id]),
                                           {"kind": "topup", "ledger_entry": other.pk, **DETAILS})
        assert "Select a valid choice" in response.content.decode()
        assert not InvoiceRequest.objects.exists()

    def test_one_live_request_per_topup_and_the_current_month_is_refused(self, org):
        entry = topup(org)
        request_topup_invoice(org, entry)
        with pytest.raises(Exception, match="already requested"):
            request_topup_invoice(org, entry)
        this_month = timezone.now().date().replace(day=1)
        with pytest.raises(Exception, match="once it has ended"):
            invoice_request_create(organization=org, actor=admin_of(org), kind=InvoiceKind.USAGE, month=this_month,
                                   details=DETAILS)


@pytest.mark.django_db
class TestIssuing:
    def test_issuing_numbers_the_invoice_makes_a_pdf_and_emails_the_registered_address(
        self, org, smtp, django_capture_on_commit_callbacks
    ):
        request = request_topup_invoice(org, topup(org, "1234.50"))
        with django_capture_on_commit_callbacks(execute=True):
            call_command("invoice_issue", str(request.pk), stdout=io.StringIO())
        invoice = Invoice.objects.get()
        year = timezone.now().year
        assert invoice.number == f"INV-{year}-000001"
        assert invoice.total == Decimal("1234.50")
        text = pdf_text(invoice)
        for expected in (invoice.number, org.public_id, "Acme GmbH", "$1,234.50", "DE123"):
            assert expected in text
        assert org.name in text
        request.refresh_from_db()
        assert request.status == InvoiceStatus.ISSUED
        [email] = [m for m in smtp.messages() if "Invoice" in m.subject]
        assert email.envelope_to == [org.registered_email]
        assert email.subject == f"Invoice {invoice.number} for {org.name} is ready"
        assert "$1,234.50" in email.text

    def test_a_month_of_usage_has_a_line_per_project_and_model_from_rollups(self, org):
        month = last_month()
        hour = datetime(month.year, month.month, 2, 10, tzinfo=UTC)
        web, batch = ProjectFactory(organization=org, name="Web"), ProjectFactory(organization=org, name="Batch")
        for project, model, cost in ((web, "large", "12.345"), (web, "small", "0.004"), (batch, "large", "1.50")):
            _raw, key = make_api_key(project=project)
            for h in (0, 5):
                rollup(key, hour + timedelta(hours=h), model=model, cost=cost, requests=10, input_tokens=1000,
                       output_tokens=500)
        ledger_post(organization=org, kind=LedgerKind.TOPUP, amount=Decimal(50), reference="p", actor=None)
        LedgerEntry.objects.create(organization=org, kind=LedgerKind.USAGE, amount=Decimal("-27.698"),
                                   balance_after=Decimal(0), usage_date=hour.date())
        request = invoice_request_create(organization=org, actor=admin_of(org), kind=InvoiceKind.USAGE, month=month,
                                         details=DETAILS)
        invoice = issue(request.pk)
        lines = [(line.description, line.amount) for line in invoice.lines.all()]
        assert lines == [
            (f"Batch ({batch.public_id}) — large", Decimal("3.00")),
            (f"Web ({web.public_id}) — large", Decimal("24.69")),
            (f"Web ({web.public_id}) — small", Decimal("0.01")),
        ]
        assert invoice.total == Decimal("27.70")  # the sum of the printed lines
        assert "20 requests" in invoice.lines.first().quantity
        assert "$27.70" in pdf_text(invoice)

    def test_an_issued_invoice_is_never_issued_again_and_a_failure_uses_no_number(self, org):
        request = request_topup_invoice(org)
        first = invoice_issue(request_id=request.pk, actor=None)
        with pytest.raises(CommandError, match="already issued"):
            call_command("invoice_issue", str(request.pk))
        empty = invoice_request_create(organization=org, actor=admin_of(org), kind=InvoiceKind.USAGE,
                                       month=last_month(), details=DETAILS)
        with pytest.raises(CommandError, match="no usage"):
            call_command("invoice_issue", str(empty.pk))
        second = invoice_issue(request_id=request_topup_invoice(org, topup(org, "3")).pk, actor=None)
        assert (first.sequence, second.sequence) == (1, 2)

    def test_a_rejected_request_shows_its_reason_and_may_be_requested_again(self, client_as, org):
        entry = topup(org)
        request = request_topup_invoice(org, entry)
        call_command("invoice_issue", str(request.pk), "--reject", "Payment not received yet", stdout=io.StringIO())
        page = client_as("admin").get(reverse("billing:overview", args=[org.public_id])).content.decode()
        assert "Rejected" in page and "Payment not received yet" in page
        assert request_topup_invoice(org, entry).status == InvoiceStatus.REQUESTED


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.MEMBER, None])
def test_the_service_itself_refuses_an_invoice_request_from_a_non_admin(org, role):
    from console.errors import Forbidden
    from console.tests.factories import UserFactory as Users

    actor = MembershipFactory(organization=org, role=role).user if role else Users()
    with pytest.raises(Forbidden):
        invoice_request_create(organization=org, actor=actor, kind=InvoiceKind.TOPUP, ledger_entry=topup(org),
                               details=DETAILS)
    assert not InvoiceRequest.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_issuing_gives_gapless_unique_numbers():
    org = OrganizationFactory()
    requests = [request_topup_invoice(org, topup(org, f"{n}.00", f"pay-{n}")).pk for n in range(1, 13)]
    issued: list[str] = []
    run_in_threads(12, lambda i: issued.append(invoice_issue(request_id=requests[i], actor=None).number))
    year = timezone.now().year
    assert sorted(issued) == [f"INV-{year}-{n:06d}" for n in range(1, 13)]
    assert Invoice.objects.count() == 12


@pytest.mark.django_db(transaction=True)
def test_the_pdf_renders_after_the_number_is_committed_never_under_the_counter_lock(monkeypatch):
    """While the PDF renders, another issuer can take the year's counter at once (NOWAIT): the
    counter lock is not held during rendering, so concurrent issues don't queue behind PDFs."""
    from billing.services import invoices

    org = OrganizationFactory()
    request = request_topup_invoice(org, topup(org, "9.00", "pay-lock"))
    real_render = invoices.render_pdf
    seen: list[str] = []

    def render_and_probe_the_lock(template, context):
        def probe():
            try:
                with transaction.atomic():
                    InvoiceCounter.objects.select_for_update(nowait=True).get(year=timezone.now().year)
                seen.append("counter free")
            except DatabaseError:
                seen.append("counter locked")

        run_in_threads(1, lambda _i: probe())
        return real_render(template, context)

    monkeypatch.setattr(invoices, "render_pdf", render_and_probe_the_lock)
    invoice = invoice_issue(request_id=request.pk, actor=None)
    invoice.refresh_from_db()
    assert seen == ["counter free"]
    assert bytes(invoice.pdf).startswith(b"%PDF")


@pytest.mark.django_db
def test_an_invoice_is_being_prepared_until_its_pdf_exists(client_as, org):
    admin = client_as("admin")
    invoice = invoice_issue(request_id=request_topup_invoice(org).pk, actor=None)  # its PDF task not run yet
    page = admin.get(reverse("billing:overview", args=[org.public_id])).content.decode()
    assert f"{invoice.number}: PDF being prepared" in page
    assert f"Download {invoice.number} (PDF)" not in page
    response = admin.get(reverse("billing:invoice_download", args=[org.public_id, invoice.number]), follow=True)
    assert "is being prepared" in response.content.decode()
    call_command("invoice_pdfs_render_missing", "--now", stdout=io.StringIO())  # what beat does for a lost task
    page = admin.get(reverse("billing:overview", args=[org.public_id])).content.decode()
    assert f"Download {invoice.number} (PDF)" in page


@pytest.mark.django_db
class TestDownloading:
    @pytest.mark.parametrize(("role", "status"), [("admin", 200), ("member", 404), ("outsider", 404),
                                                  ("anonymous", 302)])
    def test_only_org_admins_download(self, client_as, org, role, status):
        invoice = issue(request_topup_invoice(org).pk)
        response = client_as(role).get(reverse("billing:invoice_download", args=[org.public_id, invoice.number]))
        assert response.status_code == status
        if status == 200:
            assert response["Content-Type"] == "application/pdf"
            assert response.content.startswith(b"%PDF")
            assert f'filename="{invoice.number}.pdf"' in response["Content-Disposition"]

    def test_staff_download_any_invoice_and_a_wrong_org_in_the_url_is_404(self, client, org):
        invoice = issue(request_topup_invoice(org).pk)
        client.force_login(UserFactory(is_staff=True))
        assert client.get(reverse("billing:invoice_download", args=[org.public_id, invoice.number])).status_code == 200
        other = OrganizationFactory()
        wrong_org = reverse("billing:invoice_download", args=[other.public_id, invoice.number])
        assert client.get(wrong_org).status_code == 404

    def test_the_billing_page_lists_issued_invoices_with_a_download_link(self, client_as, org):
        invoice = issue(request_topup_invoice(org, topup(org, "40")).pk)
        page = client_as("admin").get(reverse("billing:overview", args=[org.public_id])).content.decode()
        assert f"Download {invoice.number} (PDF)" in page
        assert "Issued" in page and "$40.00" in page


@pytest.mark.django_db
def test_staff_issue_from_the_admin(admin_client, org):
    request = request_topup_invoice(org)
    response = admin_client.post(reverse("admin:billing_invoicerequest_changelist"),
                                 {"action": "issue_invoices", "_selected_action": [request.pk]}, follow=True)
    assert "Issued INV-" in response.content.decode()
    assert Invoice.objects.get().request == request


@pytest.mark.django_db
def test_staff_reject_from_the_admin_with_a_reason(admin_client, org):
    request = request_topup_invoice(org)
    changelist = reverse("admin:billing_invoicerequest_changelist")
    form = admin_client.post(changelist, {"action": "reject_requests", "_selected_action": [request.pk]})
    assert "Reject invoice requests" in form.content.decode()
    request.refresh_from_db()
    assert request.status == InvoiceStatus.REQUESTED  # nothing happens before a reason is given

    empty = admin_client.post(changelist, {"action": "reject_requests", "_selected_action": [request.pk],
                                           "apply": "1", "reason": ""})
    assert "This field is required." in empty.content.decode()
    done = admin_client.post(changelist, {"action": "reject_requests", "_selected_action": [request.pk],
                                          "apply": "1", "reason": "Duplicate of a paper invoice"}, follow=True)
    assert f"Rejected invoice request {request.pk}." in done.content.decode()
    request.refresh_from_db()
    assert (request.status, request.rejection_reason) == (InvoiceStatus.REJECTED, "Duplicate of a paper invoice")


@pytest.mark.django_db
def test_a_topup_link_preselects_it_in_the_request_form(client_as, org):
    entry = topup(org)
    url = reverse("billing:invoice_request", args=[org.public_id]) + f"?topup={entry.pk}"
    page = client_as("admin").get(url).content.decode()
    assert f'<option value="{entry.pk}" selected>' in page


@pytest.mark.django_db
def test_ledger_top_ups_link_to_a_request_until_one_is_made(client_as, org):
    entry = topup(org)
    client = client_as("admin")
    link = f'?topup={entry.pk}">Invoice this top-up</a>'
    assert link in client.get(reverse("billing:overview", args=[org.public_id])).content.decode()
    request_topup_invoice(org, entry)
    assert link not in client.get(reverse("billing:overview", args=[org.public_id])).content.decode()
