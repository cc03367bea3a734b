from __future__ import annotations

from pathlib import Path

import pytest

TEST_TEMPLATES = Path(__file__).resolve().parent / "templates"


@pytest.fixture
def test_templates(settings):
    """Adds console/tests/templates (email/test_notice, email/text_only, pdf/test_document)."""
    engine = settings.TEMPLATES[0]
    settings.TEMPLATES = [{**engine, "DIRS": [*engine["DIRS"], TEST_TEMPLATES]}]
