"""404 and 403 are console pages with a way back, not the bare server text."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_a_page_outside_your_organizations_is_a_friendly_404(client_as, org):
    response = client_as("outsider").get(reverse("orgs:members", args=[org.public_id]))
    assert response.status_code == 404
    page = response.content.decode()
    assert "Page not found" in page
    assert f'href="{reverse("home")}">Back to the console</a>' in page
    assert org.name not in page  # nothing about the organization leaks


def test_a_role_too_low_gets_a_403_that_says_why(client_as, org):
    response = client_as("member").get(reverse("orgs:audit_log", args=[org.public_id]))
    assert response.status_code == 403
    page = response.content.decode()
    assert "You cannot do this" in page
    assert "Your role in this organization does not allow this." in page
    assert "Ask an organization or project administrator" in page
