"""Request body limits of the pages: refused before Django reads the body, uploads kept in memory."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import InMemoryUploadedFile, SimpleUploadedFile
from django.test import RequestFactory, override_settings

from orgs.models import VerificationRequest

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def _verification_form(document: SimpleUploadedFile) -> dict[str, object]:
    return {"legal_name": "Acme GmbH", "registration_number": "HRB 1", "country": "DE", "address": "1 Main St",
            "contact_name": "Ana", "contact_email": "ana@acme.test", "contact_phone": "", "document": document}


@override_settings(CONSOLE_MAX_REQUEST_BYTES=50_000)
def test_a_page_body_over_the_limit_is_413_and_the_view_never_runs(client_as, org):
    document = SimpleUploadedFile("big.pdf", PDF + b"0" * 60_000, content_type="application/pdf")
    response = client_as("admin").post(f"/o/{org.public_id}/settings/verification/", _verification_form(document))
    assert response.status_code == 413
    assert "Upload too large" in response.content.decode()
    assert not VerificationRequest.objects.exists()


def test_an_upload_within_the_limit_stays_in_memory_never_in_a_temporary_file():
    """Django's default writes any upload over 2.5 MB to a temporary file before a form checks it."""
    document = SimpleUploadedFile("scan.pdf", PDF + b"0" * 3_000_000, content_type="application/pdf")
    request = RequestFactory().post("/upload/", {"document": document})
    assert isinstance(request.FILES["document"], InMemoryUploadedFile)


def test_form_fields_over_the_data_limit_are_400(client):
    response = client.post("/accounts/login/", {"login": "a@b.test", "password": "x" * 1_100_000})
    assert response.status_code == 400
