"""Enterprise verification: an org admin submits a request with a document; staff approve or reject."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import FileField
from django.utils import timezone

from console.errors import DomainError, Forbidden
from console.models import User
from console.services import absolute_url, email_enqueue

from ..audit import audit_record, snapshot
from ..documents import document_kind, document_problem
from ..models import (
    Organization,
    VerificationRequest,
    VerificationRequestStatus,
    VerificationStatus,
    VerificationTier,
)
from ..permissions import require_org_admin

VERIFICATION_FIELDS = (
    "legal_name", "registration_number", "country", "address", "contact_name", "contact_email", "contact_phone",
)


@dataclass(frozen=True)
class StoredDocument:
    name: str
    original_name: str
    content_type: str
    size: int


def verification_submit(
    *, organization: Organization, actor: User, data: dict[str, Any], document: UploadedFile
) -> VerificationRequest:
    """Open a verification request (one at a time) with its supporting document; the org turns pending.

    The document is stored under a random name before the transaction and removed again if it fails.
    """
    problem = document_problem(document)
    kind = document_kind(document)
    if problem or kind is None:
        raise DomainError(problem or "Upload a PDF, PNG or JPEG file.", code="invalid_document")
    field = VerificationRequest._meta.get_field("document")
    if not isinstance(field, FileField):  # pragma: no cover -- narrows the type for mypy
        raise TypeError("VerificationRequest.document must be a FileField")
    document.seek(0)
    stored_name = field.storage.save(field.generate_filename(None, f"document{kind.extension}"), document)
    try:
        return _verification_submit(
            organization=organization,
            actor=actor,
            data=data,
            document=StoredDocument(
                name=stored_name,
                original_name=(document.name or "document")[:200],
                content_type=kind.content_type,
                size=document.size or 0,
            ),
        )
    except BaseException:
        field.storage.delete(stored_name)
        raise


@transaction.atomic
def _verification_submit(
    *, organization: Organization, actor: User, data: dict[str, Any], document: StoredDocument
) -> VerificationRequest:
    organization = Organization.objects.lock(organization.pk)
    require_org_admin(actor, organization.pk)
    if organization.verification_status == VerificationStatus.PENDING:
        raise DomainError("A verification request is already under review.", code="already_pending")
    if organization.verification_status == VerificationStatus.VERIFIED:
        raise DomainError("This organization is already verified.", code="already_verified")
    values = {field: data.get(field) or "" for field in VERIFICATION_FIELDS}
    request = VerificationRequest.objects.create(
        organization=organization,
        submitted_by=actor,
        document=document.name,
        document_name=document.original_name,
        document_content_type=document.content_type,
        document_size=document.size,
        **{field: value.strip() if isinstance(value, str) else value for field, value in values.items()},
    )
    before = {"verification_status": organization.verification_status}
    organization.verification_status = VerificationStatus.PENDING
    organization.save(update_fields=["verification_status", "updated_at"])
    audit_record(
        actor=actor,
        organization=organization,
        action="verification.submit",
        target=request,
        before=before,
        after={"verification_status": organization.verification_status, "legal_name": request.legal_name},
    )
    return request


def _require_staff(actor: User | None) -> None:
    # None: a management command run by an operator (`verification_review` without --reviewer).
    if actor is not None and not (actor.is_active and actor.is_staff):
        raise Forbidden("Only platform staff review verification requests.", code="not_staff")


def _lock_pending_request(request: VerificationRequest) -> tuple[VerificationRequest, Organization]:
    organization = Organization.objects.lock(request.organization_id)
    locked = VerificationRequest.objects.select_for_update().get(pk=request.pk)
    if locked.status != VerificationRequestStatus.PENDING:
        raise DomainError(f"This request was already {locked.get_status_display().lower()}.", code="not_pending")
    return locked, organization


def _email_decision(*, request: VerificationRequest, organization: Organization, reason: str = "") -> None:
    """Tell the registered email (outbox, after commit): `verification_approved` or `_rejected`."""
    decision = "approved" if request.status == VerificationRequestStatus.APPROVED else "rejected"
    email_enqueue(
        to=[organization.registered_email],
        template=f"verification_{decision}",
        context={
            "org_name": organization.name,
            "org_id": organization.public_id,
            "verification_url": absolute_url("orgs:verification", org_id=organization.public_id),
            **({"reason": reason} if reason else {}),
        },
        unique_key=f"verification:{request.pk}:{decision}",
        organization_ref=organization.public_id,
    )


@transaction.atomic
def verification_approve(*, request: VerificationRequest, actor: User | None) -> VerificationRequest:
    """Staff approve: the organization becomes Enterprise Verified; its registered email is told."""
    _require_staff(actor)
    request, organization = _lock_pending_request(request)
    request.status = VerificationRequestStatus.APPROVED
    request.reviewed_by = actor
    request.reviewed_at = timezone.now()
    request.save(update_fields=["status", "reviewed_by", "reviewed_at"])
    before = snapshot(organization, ("verification_tier", "verification_status"))
    organization.verification_tier = VerificationTier.ENTERPRISE
    organization.verification_status = VerificationStatus.VERIFIED
    organization.save(update_fields=["verification_tier", "verification_status", "updated_at"])
    audit_record(
        actor=actor, organization=organization, action="verification.approve", target=request,
        before=before, after=snapshot(organization, ("verification_tier", "verification_status")),
    )
    _email_decision(request=request, organization=organization)
    return request


@transaction.atomic
def verification_reject(*, request: VerificationRequest, actor: User | None, reason: str) -> VerificationRequest:
    """Staff reject with a reason the organization sees (page and email); it may submit again."""
    _require_staff(actor)
    reason = reason.strip()
    if not reason:
        raise DomainError("Give the organization a reason for the rejection.", code="reason_required", field="reason")
    request, organization = _lock_pending_request(request)
    request.status = VerificationRequestStatus.REJECTED
    request.reviewed_by = actor
    request.reviewed_at = timezone.now()
    request.rejection_reason = reason
    request.save(update_fields=["status", "reviewed_by", "reviewed_at", "rejection_reason"])
    before = {"verification_status": organization.verification_status}
    organization.verification_status = VerificationStatus.REJECTED
    organization.save(update_fields=["verification_status", "updated_at"])
    audit_record(
        actor=actor, organization=organization, action="verification.reject", target=request,
        before=before, after={"verification_status": organization.verification_status, "reason": reason},
    )
    _email_decision(request=request, organization=organization, reason=reason)
    return request
