"""Shared fixtures: users, organizations, role fixtures, and Playwright on Debian's Chromium."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.test import Client

from console.models import User
from console.tests.factories import UserFactory
from orgs.models import Membership, Organization, Role
from orgs.tests.factories import READY_TO_INVITE, MembershipFactory, OrganizationFactory

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # ORM calls beside Playwright's loop

# Fixtures `smtp_server` / `smtp`: a real SMTP server process and Django's SMTP backend.
pytest_plugins = ["tests.smtp", "tests.stripe"]

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, object]) -> dict[str, object]:
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium", "args": CHROMIUM_ARGS}


@pytest.fixture
def artifacts_dir(request: pytest.FixtureRequest) -> Path:
    """Where a browser test saves its screenshots: test-artifacts/<test name>/."""
    path = ARTIFACTS / request.node.name.replace("[", "_").replace("]", "")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def user(db: None) -> User:
    return UserFactory()


@pytest.fixture
def org(db: None) -> Organization:
    return OrganizationFactory()


@pytest.fixture
def ready_org(org: Organization) -> Organization:
    """`org` with complete information and Enterprise Verified: its admins may invite."""
    Organization.objects.filter(pk=org.pk).update(**READY_TO_INVITE)
    org.refresh_from_db()
    return org


@pytest.fixture
def org_admin(org: Organization) -> User:
    return MembershipFactory(organization=org, role=Role.ADMIN).user


@pytest.fixture
def org_member(org: Organization) -> User:
    return MembershipFactory(organization=org, role=Role.MEMBER).user


@pytest.fixture
def outsider(db: None) -> User:
    """Belongs to another organization only."""
    return MembershipFactory(role=Role.ADMIN).user


@pytest.fixture
def client_as(org: Organization) -> Callable[[str], Client]:
    """client_as("admin" | "member" | "outsider" | "anonymous") -> a logged-in test client."""

    def make(role: str) -> Client:
        client = Client()
        if role == "anonymous":
            return client
        if role == "outsider":
            user = MembershipFactory(role=Role.ADMIN).user
        else:
            user = MembershipFactory(organization=org, role={"admin": Role.ADMIN, "member": Role.MEMBER}[role]).user
        client.force_login(user)
        client.user = user  # type: ignore[attr-defined]
        return client

    return make


@pytest.fixture
def reauthenticate() -> Callable[[Client], Client]:
    """reauthenticate(client): as if the client's user just re-entered their password (allauth's
    reauthentication_required then lets sensitive changes through)."""

    def mark(client: Client) -> Client:
        user = client.user  # type: ignore[attr-defined]
        session = client.session
        session["account_authentication_methods"] = [
            {"method": "password", "at": time.time(), "reauthenticated": True}
        ]
        session["account_authentication_methods_user"] = str(user.pk)
        session.save()
        return client

    return mark


@pytest.fixture
def membership_of() -> Callable[[User, Organization], Membership]:
    def get(user: User, organization: Organization) -> Membership:
        return Membership.objects.get(user=user, organization=organization)

    return get


@pytest.fixture
def page(page):  # type: ignore[no-untyped-def]
    """Playwright's page with a short default timeout: a broken page fails fast, not in 30 s."""
    page.set_default_timeout(10_000)
    return page


# Every page reports what its Content-Security-Policy blocked: the browser fires
# `securitypolicyviolation` and Chromium logs "Refused to ... Content Security Policy". The script
# below (injected by Playwright, so not itself subject to the policy) turns the event into a
# console line too, and the journeys fail on either.
_CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", function (e) {
  console.error("CSP violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline") +
                " at " + e.sourceFile + ":" + e.lineNumber);
});
"""


def _is_csp_violation(text: str) -> bool:
    return text.startswith("CSP violation:") or "Content Security Policy" in text


@pytest.fixture
def csp_violations() -> list[str]:
    """What the browser reported as blocked by the Content-Security-Policy during the test."""
    return []


@pytest.fixture
def new_context(new_context, csp_violations):  # type: ignore[no-untyped-def]
    """Every browser context of a test (`page`'s included) listens for CSP violations; the test
    fails at teardown if there was any."""

    def make(**kwargs):  # type: ignore[no-untyped-def]
        context = new_context(**kwargs)
        context.add_init_script(_CSP_LISTENER)
        context.on(
            "console",
            lambda message: csp_violations.append(f"{message.page.url if message.page else '?'}: {message.text}")
            if _is_csp_violation(message.text)
            else None,
        )
        return context

    yield make
    if csp_violations:
        pytest.fail("Content-Security-Policy violations:\n" + "\n".join(dict.fromkeys(csp_violations)))
