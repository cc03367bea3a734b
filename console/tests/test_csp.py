"""Content-Security-Policy: every page carries one; scripts only from our origin or with the nonce."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from projects.tests.factories import ProjectFactory

TEMPLATES = Path(settings.BASE_DIR) / "templates"
SCRIPT_TAG = re.compile(r"<script\b[^>]*>", re.IGNORECASE)


def policy(response) -> dict[str, list[str]]:
    header = response.headers["Content-Security-Policy"]
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def assert_scripts_allowed_only_by_policy(response) -> None:
    """What the page's policy allows for scripts, and that every <script> in it carries the nonce."""
    script_src = policy(response)["script-src"]
    assert "'unsafe-inline'" not in script_src
    assert "'unsafe-eval'" not in script_src
    nonces = [value[len("'nonce-") : -1] for value in script_src if value.startswith("'nonce-")]
    assert len(nonces) == 1, script_src
    tags = SCRIPT_TAG.findall(response.content.decode())
    assert tags, "the page loads no script at all?"
    for tag in tags:
        assert f'nonce="{nonces[0]}"' in tag, tag


@pytest.mark.django_db
def test_the_login_page_allows_only_our_scripts_and_its_nonce():
    response = Client().get("/accounts/login/")
    assert response.status_code == 200
    directives = policy(response)
    assert directives["default-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert "'self'" in directives["script-src"]
    assert_scripts_allowed_only_by_policy(response)


@pytest.mark.django_db
def test_each_response_gets_a_fresh_nonce():
    client = Client()
    first = policy(client.get("/accounts/login/"))["script-src"]
    second = policy(client.get("/accounts/login/"))["script-src"]
    assert first != second


@pytest.mark.django_db
def test_signed_in_pages_and_htmx_partials_carry_the_policy(client_as, org):
    client = client_as("admin")
    project = ProjectFactory(organization=org)
    for url in (
        f"/o/{org.public_id}/",
        f"/o/{org.public_id}/members/",
        f"/o/{org.public_id}/projects/",
        f"/o/{org.public_id}/projects/{project.public_id}/keys/",
        f"/o/{org.public_id}/billing/",
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        assert_scripts_allowed_only_by_policy(response)
    partial = client.get(f"/o/{org.public_id}/projects/{project.public_id}/keys/new/", HTTP_HX_REQUEST="true")
    assert partial.status_code == 200
    assert "'unsafe-inline'" not in policy(partial)["script-src"]
    assert not SCRIPT_TAG.findall(partial.content.decode())  # htmx swaps in no script


def test_no_template_has_an_inline_script_or_an_inline_event_handler():
    offenders = []
    for template in TEMPLATES.rglob("*.html"):
        if template.parts[-2] in ("email", "emails", "pdf") or "email" in template.parts:
            continue  # emails and PDFs are not pages a browser runs
        text = template.read_text()
        for tag in SCRIPT_TAG.findall(text):
            if "src=" not in tag or "CSP_NONCE" not in tag:
                offenders.append(f"{template.relative_to(TEMPLATES)}: {tag}")
        for handler in re.findall(r"\son[a-z]+\s*=", text):
            offenders.append(f"{template.relative_to(TEMPLATES)}: {handler.strip()}")
        if "javascript:" in text:
            offenders.append(f"{template.relative_to(TEMPLATES)}: javascript: URL")
    assert offenders == []


def test_script_origins_come_from_one_setting():
    """Another origin for scripts (Stripe.js, say) goes in CONSOLE_CSP_SCRIPT_SRC, never in templates."""
    assert settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]["script-src"][2:] == settings.CONSOLE_CSP_SCRIPT_SRC
