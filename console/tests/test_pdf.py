"""render_pdf: a real PDF (WeasyPrint) whose text reads back; it loads nothing but static files."""

from __future__ import annotations

import io
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from PIL import Image
from pypdf import PdfReader

from console.pdf import render_pdf

pytestmark = pytest.mark.usefixtures("test_templates")


def document(**overrides):
    return {
        "number": "INV-2026-000123",
        "org_name": "Acme & Co",
        "org_id": "org-abc123",
        "issued": "2026-11-25",
        "lines": [("Top-up", "$1,200.00"), ("GPT usage, November", "$34.50")],
        "total": "$1,234.50",
        "images": [],
        **overrides,
    }


def test_the_pdf_opens_and_holds_the_rendered_text():
    pdf = render_pdf("pdf/test_document.html", document())

    assert pdf.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 1
    text = reader.pages[0].extract_text()
    for expected in ("Invoice INV-2026-000123", "Acme & Co", "org-abc123", "Total", "$1,234.50", "Page 1 of 1"):
        assert expected in text
    assert reader.metadata.title == "INV-2026-000123"


def test_long_documents_get_page_numbers_on_every_page():
    lines = [(f"Project {i}", "$1.00") for i in range(120)]
    reader = PdfReader(io.BytesIO(render_pdf("pdf/test_document.html", document(lines=lines))))
    assert len(reader.pages) > 1
    last = len(reader.pages)
    assert f"Page {last} of {last}" in reader.pages[-1].extract_text()


def _png(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), "red").save(path)
    return path


def test_only_static_files_are_loaded(tmp_path, settings):
    settings.STATICFILES_DIRS = [tmp_path / "static"]
    allowed = _png(tmp_path / "static" / "logo.png")
    outside = _png(tmp_path / "private" / "secret.png")

    pdf = render_pdf("pdf/test_document.html", document(images=[allowed.as_uri(), outside.as_uri()]))

    assert len(PdfReader(io.BytesIO(pdf)).pages[0].images) == 1


def test_a_document_never_fetches_from_the_network():
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/tracker.png"
        pdf = render_pdf("pdf/test_document.html", document(images=[url]))
    finally:
        server.shutdown()
        server.server_close()
    assert pdf.startswith(b"%PDF-")
    assert hits == []
