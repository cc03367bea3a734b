"""Enterprise verification: submitting, the document, staff review (admin and command), limits."""

from __future__ import annotations

import os

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from console.errors import DomainError
from console.tests.factories import UserFactory
from orgs import hooks
from orgs.models import AuditEvent, Organization, VerificationRequest, VerificationStatus, VerificationTier
from orgs.services import verification_approve, verification_reject, verification_submit

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def _form(document=None, **overrides):
    data = {
        "legal_name": "Acme GmbH",
        "registration_number": "HRB 12345",
        "country": "DE",
        "address": "1 Main St, Berlin",
        "contact_name": "Ana Lopez",
        "contact_email": "ana@acme.test",
        "contact_phone": "",
        "document": document or SimpleUploadedFile("certificate.pdf", PDF, content_type="application/pdf"),
    }
    data.update(overrides)
    return data


def _submit(org, admin, document=None):
    data = _form()
    data.pop("document")
    return verification_submit(
        organization=org,
        actor=admin,
        data=data,
        document=document or SimpleUploadedFile("certificate.pdf", PDF, content_type="application/pdf"),
    )


def _url(org):
    return reverse("orgs:verification", args=[org.public_id])


def _stored_files(media_root):
    folder = media_root / "verification"
    return sorted(os.listdir(folder)) if folder.exists() else []


def test_admin_submits_a_request_and_the_org_turns_pending(client_as, org, media_root):
    client = client_as("admin")
    page = client.get(_url(org)).content.decode()
    assert "Request enterprise verification" in page
    response = client.post(_url(org), _form(), follow=True)
    body = response.content.decode()
    assert "Verification request submitted." in body
    assert "Pending review" in body
    assert "Submit for verification" not in body  # one open request at a time
    request = VerificationRequest.objects.get()
    assert (request.legal_name, request.country.code, request.document_content_type) == (
        "Acme GmbH",
        "DE",
        "application/pdf",
    )
    [stored] = _stored_files(media_root)
    assert stored.endswith(".pdf") and "certificate" not in stored  # a random name
    assert request.document_name == "certificate.pdf"
    org.refresh_from_db()
    assert org.verification_status == VerificationStatus.PENDING
    assert AuditEvent.objects.get(action="verification.submit").actor == client.user


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("fake.pdf", b"MZ\x90\x00 this is an executable", "Upload a PDF, PNG or JPEG file."),
        ("notes.txt", b"hello", "Upload a PDF, PNG or JPEG file."),
        ("empty.pdf", b"", "The submitted file is empty."),
        ("big.pdf", PDF + b"0" * 2048, "The file is larger than"),
    ],
)
def test_bad_documents_are_refused_and_nothing_is_stored(client_as, org, media_root, settings, name, content, message):
    settings.CONSOLE_VERIFICATION_MAX_BYTES = 1024
    response = client_as("admin").post(_url(org), _form(SimpleUploadedFile(name, content)))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not VerificationRequest.objects.exists()
    assert _stored_files(media_root) == []
    org.refresh_from_db()
    assert org.verification_status == VerificationStatus.NOT_VERIFIED


def test_missing_fields_are_reported(client_as, org):
    response = client_as("admin").post(_url(org), _form(legal_name="", country="XX"))
    body = response.content.decode()
    assert "This field is required." in body and "Select a valid choice." in body
    assert not VerificationRequest.objects.exists()


def test_png_and_jpeg_are_accepted(org, org_admin):
    request = _submit(org, org_admin, SimpleUploadedFile("scan.png", PNG))
    assert request.document_content_type == "image/png"
    verification_reject(request=request, actor=None, reason="Blurry")
    jpeg = SimpleUploadedFile("scan.jpeg", b"\xff\xd8\xff\xe0" + b"\x00" * 32)
    assert _submit(org, org_admin, jpeg).document_content_type == "image/jpeg"


def test_second_open_request_is_refused_and_its_file_removed(org, org_admin, media_root):
    _submit(org, org_admin)
    with pytest.raises(DomainError) as error:
        _submit(org, org_admin)
    assert error.value.code == "already_pending"
    assert VerificationRequest.objects.count() == 1
    assert len(_stored_files(media_root)) == 1


@pytest.mark.parametrize(("role", "status"), [("outsider", 404), ("member", 403)])
def test_only_admins_submit(client_as, org, role, status):
    assert client_as(role).post(_url(org), _form()).status_code == status
    assert not VerificationRequest.objects.exists()


def test_member_sees_status_and_limits_but_no_form_or_history(client_as, org, org_admin):
    _submit(org, org_admin)
    page = client_as("member").get(_url(org)).content.decode()
    assert "Pending review" in page
    assert 'id="limits"' in page
    assert "Submit for verification" not in page
    assert "Request history" not in page
    assert "certificate.pdf" not in page


def test_approval_makes_the_org_enterprise_verified_and_emails_it(org, org_admin, django_capture_on_commit_callbacks):
    request = _submit(org, org_admin)
    staff = UserFactory(is_staff=True)
    with django_capture_on_commit_callbacks(execute=True):
        verification_approve(request=request, actor=staff)
    org.refresh_from_db()
    assert (org.verification_tier, org.verification_status) == (
        VerificationTier.ENTERPRISE,
        VerificationStatus.VERIFIED,
    )
    [message] = mail.outbox
    assert message.to == [org.registered_email]
    assert "Enterprise Verified" in message.subject
    request.refresh_from_db()
    assert (request.status, request.reviewed_by) == ("approved", staff)
    with pytest.raises(DomainError):
        verification_approve(request=request, actor=staff)  # decided requests stay decided


def test_rejection_shows_the_reason_and_the_org_may_resubmit(client_as, org, django_capture_on_commit_callbacks):
    client = client_as("admin")
    request = _submit(org, client.user)
    with pytest.raises(DomainError):
        verification_reject(request=request, actor=None, reason="   ")
    with django_capture_on_commit_callbacks(execute=True):
        verification_reject(request=request, actor=None, reason="The registry extract is older than 3 months.")
    assert "The registry extract is older than 3 months." in mail.outbox[0].body
    page = client.get(_url(org)).content.decode()
    assert "Your last request was not approved:</strong> The registry extract is older than 3 months." in page
    assert "Submit again" in page
    resubmit = client.get(_url(org)).content.decode()
    assert 'value="HRB 12345"' in resubmit  # starts from the rejected request, not from scratch
    assert client.post(_url(org), _form()).status_code == 302
    assert VerificationRequest.objects.filter(status="pending").count() == 1
    history = client.get(_url(org)).content.decode()
    assert history.count("certificate.pdf") == 2


def test_verification_review_command(org, org_admin):
    with pytest.raises(CommandError, match="no pending verification request"):
        call_command("verification_review", org.public_id, "--approve")
    _submit(org, org_admin)
    with pytest.raises(CommandError, match="--reason"):
        call_command("verification_review", org.public_id, "--reject")
    call_command("verification_review", org.public_id, "--reject", "--reason", "Name does not match the registry")
    org.refresh_from_db()
    assert org.verification_status == VerificationStatus.REJECTED
    assert VerificationRequest.objects.get().rejection_reason == "Name does not match the registry"
    _submit(org, org_admin)
    staff = UserFactory(is_staff=True)
    call_command("verification_review", org.public_id, "--approve", "--reviewer", staff.email)
    org.refresh_from_db()
    assert org.verification_tier == VerificationTier.ENTERPRISE
    assert VerificationRequest.objects.get(status="approved").reviewed_by == staff


@pytest.fixture
def staff_client(client):
    staff = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)
    return client


def test_staff_approve_in_the_admin(staff_client, org, org_admin):
    request = _submit(org, org_admin)
    changelist = reverse("admin:orgs_verificationrequest_changelist")
    response = staff_client.post(
        changelist, {"action": "approve_selected", "_selected_action": [request.pk]}, follow=True
    )
    assert "Approved 1 request(s)" in response.content.decode()
    org.refresh_from_db()
    assert org.verification_tier == VerificationTier.ENTERPRISE


def test_staff_reject_in_the_admin_asks_for_a_reason(staff_client, org, org_admin):
    request = _submit(org, org_admin)
    changelist = reverse("admin:orgs_verificationrequest_changelist")
    page = staff_client.post(changelist, {"action": "reject_selected", "_selected_action": [request.pk]})
    assert "Reject with this reason" in page.content.decode()
    request.refresh_from_db()
    assert request.status == "pending"  # nothing happens before a reason is given
    staff_client.post(
        changelist,
        {"action": "reject_selected", "_selected_action": [request.pk], "apply": "1", "reason": "Document unreadable"},
    )
    request.refresh_from_db()
    assert (request.status, request.rejection_reason) == ("rejected", "Document unreadable")


def test_staff_edit_limit_overrides_in_the_admin_and_it_is_audited(staff_client, org):
    url = reverse("admin:orgs_organization_change", args=[org.pk])
    page = staff_client.get(url).content.decode()
    assert "projects_limit_override" in page and "api_keys_limit_override" in page
    form = {
        "name": org.name,
        "registered_email": org.registered_email,
        "legal_address": "",
        "country": "",
        "tax_number": "",
        "website": "",
        "projects_limit_override": "120",
        "api_keys_limit_override": "",
        "rate_tier_override": "Tier3",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
    }
    assert staff_client.post(url, {**form, "rate_tier_override": "Tier99"}).status_code == 200  # not a tier
    org.refresh_from_db()
    assert org.rate_tier_override == ""
    assert staff_client.post(url, form).status_code == 302
    org.refresh_from_db()
    assert (org.projects_limit_override, org.api_keys_limit_override, org.rate_tier_override) == (120, None, "Tier3")
    event = AuditEvent.objects.get(action="organization.limits_update")
    assert event.after == {"projects_limit_override": 120, "rate_tier_override": "Tier3"}
    assert event.actor.is_staff
    assert staff_client.get(reverse("admin:orgs_verificationrequest_changelist")).status_code == 200
    assert staff_client.get(reverse("admin:orgs_invitation_changelist")).status_code == 200


@pytest.mark.parametrize(("who", "status"), [("outsider", 404), ("member", 403), ("admin", 200), ("staff", 200)])
def test_document_is_served_only_to_staff_and_org_admins(client_as, client, org, org_admin, who, status):
    request = _submit(org, org_admin)
    if who == "staff":
        client.force_login(UserFactory(is_staff=True))
        viewer = client
    else:
        viewer = client_as(who)
    response = viewer.get(reverse("orgs:verification_document", args=[org.public_id, request.pk]))
    assert response.status_code == status
    if status == 200:
        assert response["Content-Disposition"] == 'attachment; filename="certificate.pdf"'
        assert response["Content-Type"] == "application/pdf"
        assert "sandbox" in response["Content-Security-Policy"]
        assert b"".join(response.streaming_content) == PDF


def test_document_of_another_org_is_404(client_as, org, outsider):
    from orgs.models import Membership

    other = Membership.objects.get(user=outsider).organization
    request = _submit(other, outsider)
    response = client_as("admin").get(reverse("orgs:verification_document", args=[org.public_id, request.pk]))
    assert response.status_code == 404


def test_limits_table_shows_usage_and_allowance(client_as, org, monkeypatch):
    monkeypatch.setattr(hooks, "_usage_counters", {"projects": lambda organization: 20})
    page = client_as("member").get(_url(org)).content.decode()
    monkeypatch.setattr(hooks, "_usage_counters", {})
    text = " ".join(page.split())
    assert '<td>Projects</td> <td class="num">20</td> <td class="num">20</td>' in text
    assert "Limit reached" in text
    assert reverse("orgs:contact_sales", args=[org.public_id]) + "?need=projects" in text
    assert '<td>API keys</td> <td class="num">0</td> <td class="num">50</td>' in text
    Organization.objects.filter(pk=org.pk).update(
        verification_tier=VerificationTier.ENTERPRISE, api_keys_limit_override=250
    )
    text = " ".join(client_as("member").get(_url(org)).content.decode().split())
    assert '<td>Projects</td> <td class="num">0</td> <td class="num">50</td>' in text
    assert '<td>API keys</td> <td class="num">0</td> <td class="num">250</td>' in text
