"""Verification documents are checked by their content, never by their name or declared type."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile


@dataclass(frozen=True)
class DocumentKind:
    content_type: str
    extension: str


_SIGNATURES: list[tuple[bytes, DocumentKind]] = [
    (b"%PDF-", DocumentKind("application/pdf", ".pdf")),
    (b"\x89PNG\r\n\x1a\n", DocumentKind("image/png", ".png")),
    (b"\xff\xd8\xff", DocumentKind("image/jpeg", ".jpg")),
]


def document_problem(upload: UploadedFile) -> str | None:
    """Why this upload is refused, or None when it is a PDF, PNG or JPEG within the size limit."""
    limit = settings.CONSOLE_VERIFICATION_MAX_BYTES
    if upload.size is None or upload.size == 0:
        return "The file is empty."
    if upload.size > limit:
        return f"The file is larger than {limit // (1024 * 1024)} MB."
    if document_kind(upload) is None:
        return "Upload a PDF, PNG or JPEG file."
    return None


def document_kind(upload: UploadedFile) -> DocumentKind | None:
    upload.seek(0)
    head = upload.read(16)
    upload.seek(0)
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind
    return None
