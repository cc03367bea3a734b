from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def test_no_template_has_a_multiline_short_comment():
    # Django's {# #} comments end at the line: a second line would be shown to the user as text.
    offenders = [
        f"{path.relative_to(TEMPLATES)}:{number}"
        for path in TEMPLATES.rglob("*.html")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "{#" in line and "#}" not in line
    ]
    assert offenders == []


@pytest.mark.django_db
def test_billing_page_shows_no_template_source(client_as, org):
    page = client_as("admin").get(reverse("billing:overview", args=[org.public_id])).content.decode()
    assert "{#" not in page and "{%" not in page
