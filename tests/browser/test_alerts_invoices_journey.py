"""In real Chromium: an org admin sets the balance alert threshold; staff tops up and usage drives
the balance below it, so the banner shows; the admin requests an invoice, staff issues it, the
admin downloads the PDF."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core import mail
from playwright.sync_api import Page, expect
from pypdf import PdfReader

from billing.models import InvoiceRequest, LedgerKind
from billing.services.invoices import invoice_issue
from billing.services.ledger import ledger_post
from billing.tests.factories import PriceFactory, ProjectFactory, make_api_key
from console.tests.factories import TEST_PASSWORD, UserFactory
from orgs.models import Role
from orgs.tests.factories import MembershipFactory
from tests.browser.test_billing_journey import report_usage

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_threshold_banner_and_invoice_download(live_server, page: Page, artifacts_dir):
    admin = UserFactory(email="ada@example.com")
    org = MembershipFactory(user=admin, role=Role.ADMIN, organization__name="Ada Labs",
                            organization__legal_address="1 Harbour Rd, Leith").organization
    PriceFactory(model="acme-large", input_per_mtok=Decimal("2.50"), output_per_mtok=Decimal("10"))
    _raw, key = make_api_key(project=ProjectFactory(organization=org, name="Chatbot"))

    page.goto(live_server.url + "/accounts/login/")
    page.get_by_label("Email").fill(admin.email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign In").click()

    # The admin sets the threshold to $20 and adds a recipient.
    page.get_by_role("link", name="Balance alerts").click()
    expect(page.get_by_label("Alert threshold")).to_have_value("5.00")
    page.get_by_label("Alert threshold").fill("20")
    page.get_by_label("Additional recipients").fill("finance@ada.example")
    page.get_by_role("button", name="Save alert settings").click()
    expect(page.get_by_role("status").filter(has_text="Balance alert settings saved.")).to_be_visible()
    expect(page.locator("#alert-panel")).to_contain_text("finance@ada.example")
    page.screenshot(path=artifacts_dir / "01-balance-alerts.png", full_page=True)

    # Staff tops up $25; the gateway reports $6 of usage: $19 < $20.
    ledger_post(organization=org, kind=LedgerKind.TOPUP, amount=Decimal("25"), reference="wire-2026-001",
                memo="Bank transfer", actor=None)
    page.get_by_role("link", name="Overview").click()
    expect(page.locator("#balance-banner")).to_have_count(0)
    assert report_usage(live_server.url, key.public_id, "evt-1", 2_400_000)["accepted"] == 1
    page.reload()
    expect(page.locator("#balance-banner")).to_contain_text("Low balance.")
    page.screenshot(path=artifacts_dir / "02-low-balance-banner.png", full_page=True)
    alerts = [m for m in mail.outbox if m.subject.startswith("Low balance")]
    assert len(alerts) == 1 and sorted(alerts[0].to) == [org.registered_email, "finance@ada.example"]

    # The admin requests an invoice for the top-up, editing the billed name.
    page.get_by_role("navigation", name="Organization").get_by_role("link", name="Billing").click()
    page.get_by_role("link", name="Request invoice").click()
    expect(page.get_by_label("Billed to")).to_have_value("Ada Labs")
    expect(page.get_by_label("Address")).to_have_value("1 Harbour Rd, Leith")
    page.get_by_role("radio", name="Top-up").check()
    page.get_by_role("combobox", name="Top-up").select_option(index=1)
    page.get_by_label("Billed to").fill("Ada Labs Ltd")
    page.screenshot(path=artifacts_dir / "03-request-invoice.png", full_page=True)
    page.get_by_role("button", name="Request invoice").click()
    expect(page.get_by_role("status").filter(has_text="Invoice requested.")).to_be_visible()
    expect(page.locator("#invoices")).to_contain_text("Requested")

    # Staff issues it; the admin downloads the PDF.
    invoice = invoice_issue(request_id=InvoiceRequest.objects.get().pk, actor=None)
    invoice.refresh_from_db()  # the PDF is rendered after commit (a task, eager here)
    page.goto(page.url.split("#")[0])
    (artifacts_dir / "invoice.pdf").write_bytes(bytes(invoice.pdf))
    page.screenshot(path=artifacts_dir / "04-invoice-issued.png", full_page=True)
    with page.expect_download() as download_info:
        page.get_by_role("link", name=f"Download {invoice.number} (PDF)").click()
    path = download_info.value.path()
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(path.read_bytes())).pages)
    assert invoice.number in text and "Ada Labs Ltd" in text and "$25.00" in text
