from __future__ import annotations

import pytest
from django.core.management import call_command

from console.demo import demo_load
from orgs.selectors import invite_blockers
from projects.keys import api_key_authenticate
from projects.models import APIKey, Project

pytestmark = pytest.mark.django_db


def test_demo_org_is_verified_so_inviting_works_and_loading_twice_is_harmless():
    first = demo_load()
    again = demo_load()
    assert first.created and not again.created
    assert again.organization == first.organization
    org = again.organization
    assert org.get_verification_tier_display() == "Enterprise Verified"
    assert org.information_complete
    assert invite_blockers(organization=org) == []


def test_demo_has_a_project_with_a_budget_and_a_working_key():
    result = demo_load()
    assert result.project.name == "Demo project"
    assert result.project.monthly_budget is not None
    assert result.project.memberships.filter(user=result.user).exists()
    assert (api_key_authenticate(result.api_key).error is None)


def test_demo_is_idempotent_and_replaces_the_key_only_when_asked():
    first = demo_load()
    again = demo_load()
    assert again.api_key is None  # a working key exists; its secret cannot be shown twice
    assert Project.objects.count() == 1
    assert APIKey.objects.count() == 1
    replaced = demo_load(new_key=True)
    assert (api_key_authenticate(replaced.api_key).error is None)
    assert api_key_authenticate(first.api_key).error == "revoked"


def test_demo_command_prints_the_new_key_once(capsys):
    call_command("demo")
    first = capsys.readouterr().out
    assert "API key:  sk-" in first
    call_command("demo")
    assert "--new-key" in capsys.readouterr().out
