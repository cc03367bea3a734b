from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings

from console.checks import embedded_defaults_check

ROOT = Path(__file__).resolve().parents[2]


SERVICES = {
    "EMAIL_URL": "smtp+tls://console:secret@smtp.example.com:587",
    "DATABASE_URL": "postgres://console@db.example.com:5432/console",
    "REDIS_URL": "redis://redis.example.com:6379/0",
    "CELERY_BROKER_URL": "redis://redis.example.com:6379/1",
}
SECRET = {"SECRET_KEY": "x" * 30 + "production-secret-key-with-entropy-1234567890"}


def _check(env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # The last of these is test-only; the services are set by each test, never inherited.
    dropped = {"SECRET_KEY", "DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE", *SERVICES}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update({"DJANGO_SETTINGS_MODULE": "console.settings.production", **env_extra})
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )


def test_production_passes_check_deploy_with_a_secret_key_and_its_services():
    result = _check({**SECRET, **SERVICES})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_every_embedded_default_naming_the_variable_to_set():
    result = _check(SECRET)
    assert result.returncode != 0
    for code, variable in (("E001", "EMAIL_URL"), ("E002", "DATABASE_URL"), ("E003", "REDIS_URL"),
                           ("E004", "CELERY_BROKER_URL")):
        assert f"console.{code}" in result.stderr, result.stderr
        assert f"Set {variable}" in result.stderr


@pytest.mark.parametrize(
    ("overrides", "code", "variable"),
    [
        ({"EMAIL_BACKEND": "console.mail.ConsoleAndFileBackend"}, "console.E001", "EMAIL_URL"),
        ({"DATABASES": {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "x.sqlite3"}}},
         "console.E002", "DATABASE_URL"),
        ({"REDIS_URL": ""}, "console.E003", "REDIS_URL"),
        ({"CELERY_BROKER_URL": "filesystem://"}, "console.E004", "CELERY_BROKER_URL"),
    ],
    ids=["console-email", "sqlite", "no-redis", "filesystem-broker"],
)
def test_each_embedded_default_is_one_error(overrides, code, variable):
    services = {"EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend", "REDIS_URL": "redis://r:6379/0",
                "CELERY_BROKER_URL": "redis://r:6379/1", "CONSOLE_REQUIRE_SERVICES": True}
    with override_settings(**services):
        assert embedded_defaults_check() == []
    with override_settings(**{**services, **overrides}):
        errors = embedded_defaults_check()
    assert [e.id for e in errors] == [code]
    assert f"Set {variable}" in errors[0].hint


def test_outside_production_the_embedded_defaults_are_fine():
    with override_settings(CONSOLE_REQUIRE_SERVICES=False, CELERY_BROKER_URL="filesystem://", REDIS_URL=""):
        assert embedded_defaults_check() == []


def test_production_refuses_to_start_without_secret_key():
    result = _check({})
    assert result.returncode != 0
    assert "SECRET_KEY must be set in production." in result.stderr
