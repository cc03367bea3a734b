"""Verification documents are checked by their content, never by their name or declared type.

A document must be what its first bytes say it is, all the way through: a PDF that pypdf parses
(with at least one page), a PNG or JPEG that Pillow decodes. A file name that claims another type
(`evil".html` starting with `%PDF-`) is refused. The uploader's name is kept as text to show; the
stored file and the download get a generated name with the extension of the detected type.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from PIL import Image, UnidentifiedImageError
from pypdf import PdfReader
from pypdf.errors import PyPdfError


@dataclass(frozen=True)
class DocumentKind:
    content_type: str
    extension: str
    other_extensions: tuple[str, ...] = ()

    @property
    def extensions(self) -> tuple[str, ...]:
        return (self.extension, *self.other_extensions)


PDF = DocumentKind("application/pdf", ".pdf")
PNG = DocumentKind("image/png", ".png")
JPEG = DocumentKind("image/jpeg", ".jpg", (".jpeg",))
KINDS = {kind.content_type: kind for kind in (PDF, PNG, JPEG)}

_SIGNATURES: list[tuple[bytes, DocumentKind]] = [
    (b"%PDF-", PDF),
    (b"\x89PNG\r\n\x1a\n", PNG),
    (b"\xff\xd8\xff", JPEG),
]
_PIL_FORMATS = {PNG: "PNG", JPEG: "JPEG"}
WRONG_TYPE = "Upload a PDF, PNG or JPEG file."


def document_kind(upload: UploadedFile) -> DocumentKind | None:
    """The type the content starts like (its claim), or None."""
    upload.seek(0)
    head = upload.read(16)
    upload.seek(0)
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind
    return None


def document_problem(upload: UploadedFile) -> str | None:
    """Why this upload is refused, or None when it is a whole PDF, PNG or JPEG within the size limit."""
    limit = settings.CONSOLE_VERIFICATION_MAX_BYTES
    if upload.size is None or upload.size == 0:
        return "The file is empty."
    if upload.size > limit:
        return f"The file is larger than {limit // (1024 * 1024)} MB."
    kind = document_kind(upload)
    if kind is None:
        return WRONG_TYPE
    suffix = PurePath(upload.name or "").suffix.lower()
    if suffix and suffix not in kind.extensions:
        return f"The file is named “…{suffix[:10]}” but it is a {kind.extension[1:].upper()} file: {WRONG_TYPE}"
    try:
        problem = _pdf_problem(upload) if kind is PDF else _image_problem(upload, kind)
    finally:
        upload.seek(0)
    return problem


def _pdf_problem(upload: UploadedFile) -> str | None:
    upload.seek(0)
    # pypdf reports repairs of slightly broken (yet readable) files as log warnings: not our errors.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(upload, strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            return "The PDF is password-protected: upload it without a password."
        if len(reader.pages) == 0:
            return "The PDF has no pages."
        reader.pages[0].mediabox  # noqa: B018 -- parses the first page's dictionary
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError, OSError):
        return "The file starts like a PDF but is not a readable PDF document."
    return None


def _image_problem(upload: UploadedFile, kind: DocumentKind) -> str | None:
    label = _PIL_FORMATS[kind]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            upload.seek(0)
            with Image.open(upload, formats=[label]) as image:
                image.verify()  # the structure and checksums
            upload.seek(0)
            with Image.open(upload, formats=[label]) as image:
                image.load()  # every pixel decodes
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        return "The image is too large (too many pixels)."
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        return f"The file starts like a {label} image but does not decode as one."
    return None


def document_download_name(request: Any) -> str:
    """The name a verification document downloads under: generated, with the detected type's extension."""
    kind = KINDS.get(request.document_content_type)
    extension = kind.extension if kind else ".bin"
    return f"verification-{request.organization.public_id}-{request.pk}{extension}"
