"""The access matrix: every org-, project-, key-, invitation-, invoice- and document-scoped URL of
the URLconf, under GET and POST, tried by every kind of visitor. The expected status of each pair
is in MATRIX below; a new URL pattern without an entry fails here, outsiders always get 404 (also
with their own organization's id in front of this organization's objects), nothing answers 500.

Each request runs in a transaction that is rolled back, so one actor's POST (a revoked key, an
archived project) does not change what the next actor sees. POSTs carry no form data: the
fuzzing suite (test_form_fuzz.py) sends the odd values.
"""

from __future__ import annotations

import os
import re

import pytest
from django.db import transaction
from django.urls import reverse

from tests.gateway.figures import FIGURES

from .world import ACTORS, World, build_world, url_patterns

pytestmark = pytest.mark.django_db

COLUMNS = ("anonymous", "outsider", *ACTORS[1:])
METHODS = ("GET", "POST")
# Anonymous visitors are sent to the login page (302); a role below the page's gets 403; 405 is the
# method no one may use. Each entry is (GET statuses, POST statuses), for COLUMNS in order:
#   anonymous, outsider, member, project_member, project_admin, admin, staff
# where member = General Member in no project, project_member/project_admin = General Members with
# that role in the project, admin = Organization Administrator, staff = platform staff (not a member).
MATRIX: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    # name                         GET: anon  out  mem  pmem padm adm  staff   POST: the same columns
    "billing:add_funds":            ((302, 404, 403, 403, 403, 200, 404), (302, 405, 405, 405, 405, 405, 405)),
    # Paying and changing auto-recharge ask for the password again: an admin's POST is sent there (302).
    "billing:add_funds_pay":        ((302, 405, 405, 405, 405, 405, 405), (302, 404, 403, 403, 403, 302, 404)),
    "billing:auto_recharge":        ((302, 404, 403, 403, 403, 200, 404), (302, 404, 403, 403, 403, 302, 404)),
    "billing:auto_recharge_card_confirm": ((302, 405, 405, 405, 405, 405, 405), (302, 404, 403, 403, 403, 302, 404)),
    "billing:auto_recharge_card_remove":  ((302, 405, 405, 405, 405, 405, 405), (302, 404, 403, 403, 403, 302, 404)),
    "billing:payment_status":       ((302, 404, 404, 404, 404, 200, 404), (302, 405, 405, 405, 405, 405, 405)),
    "billing:receipt":              ((302, 404, 404, 404, 404, 200, 200), (302, 405, 405, 405, 405, 405, 405)),
    "billing:balance_alerts":       ((302, 404, 403, 403, 403, 200, 404), (302, 404, 403, 403, 403, 200, 404)),
    "billing:invoice_download":     ((302, 404, 404, 404, 404, 200, 200), (302, 405, 405, 405, 405, 405, 405)),
    "billing:invoice_request":      ((302, 404, 403, 403, 403, 200, 404), (302, 404, 403, 403, 403, 200, 404)),
    "billing:ledger_csv":           ((302, 404, 403, 403, 403, 200, 404), (302, 405, 405, 405, 405, 405, 405)),
    "billing:org_rate_limits":      ((302, 404, 403, 403, 403, 200, 404), (302, 405, 405, 405, 405, 405, 405)),
    "billing:org_usage":            ((302, 404, 403, 403, 403, 200, 404), (302, 405, 405, 405, 405, 405, 405)),
    "billing:overview":             ((302, 404, 403, 403, 403, 200, 404), (302, 405, 405, 405, 405, 405, 405)),
    "billing:project_rate_limits":  ((302, 404, 404, 200, 200, 200, 404), (302, 405, 405, 405, 405, 405, 405)),
    "billing:project_usage":        ((302, 404, 404, 200, 200, 200, 404), (302, 405, 405, 405, 405, 405, 405)),
    "orgs:audit_log":               ((302, 404, 403, 403, 403, 200, 404), (302, 405, 405, 405, 405, 405, 405)),
    "orgs:contact_sales":           ((302, 404, 200, 200, 200, 200, 404), (302, 404, 200, 200, 200, 200, 404)),
    "orgs:contact_sales_done":      ((302, 404, 200, 200, 200, 200, 404), (302, 405, 405, 405, 405, 405, 405)),
    "orgs:information":             ((302, 404, 403, 403, 403, 200, 404), (302, 404, 403, 403, 403, 200, 404)),
    "orgs:invitation":              ((200, 200, 200, 200, 200, 200, 200), (405, 405, 405, 405, 405, 405, 405)),
    "orgs:invitation_accept":       ((302, 405, 405, 405, 405, 405, 405), (302, 302, 302, 302, 302, 302, 302)),
    "orgs:invitation_create":       ((302, 404, 403, 403, 403, 302, 404), (302, 404, 403, 403, 403, 200, 404)),
    "orgs:invitation_open":         ((302, 302, 302, 302, 302, 302, 302), (405, 405, 405, 405, 405, 405, 405)),
    "orgs:invitation_resend":       ((302, 405, 405, 405, 405, 405, 405), (302, 404, 403, 403, 403, 200, 404)),
    "orgs:invitation_revoke":       ((302, 405, 405, 405, 405, 405, 405), (302, 404, 403, 403, 403, 200, 404)),
    "orgs:member_remove":           ((302, 404, 403, 403, 403, 200, 404), (302, 404, 403, 403, 403, 302, 404)),
    "orgs:member_role":             ((302, 405, 405, 405, 405, 405, 405), (302, 404, 403, 403, 403, 302, 404)),
    "orgs:members":                 ((302, 404, 403, 403, 403, 200, 404), (302, 405, 405, 405, 405, 405, 405)),
    "orgs:overview":                ((302, 404, 200, 200, 200, 200, 404), (302, 405, 405, 405, 405, 405, 405)),
    "orgs:verification":            ((302, 404, 200, 200, 200, 200, 404), (302, 404, 403, 403, 403, 200, 404)),
    "orgs:verification_document":   ((302, 404, 403, 403, 403, 200, 200), (302, 405, 405, 405, 405, 405, 405)),
    "projects:archive":             ((302, 405, 405, 405, 405, 405, 405), (302, 404, 404, 403, 403, 302, 404)),
    "projects:create":              ((302, 404, 403, 403, 403, 200, 404), (302, 404, 403, 403, 403, 200, 404)),
    "projects:key_create":          ((302, 404, 404, 200, 200, 200, 404), (302, 404, 404, 200, 200, 200, 404)),
    "projects:key_revoke":          ((302, 404, 404, 403, 200, 200, 404), (302, 404, 404, 403, 302, 302, 404)),
    "projects:key_roll":            ((302, 404, 404, 403, 200, 403, 404), (302, 404, 404, 403, 200, 403, 404)),
    "projects:keys":                ((302, 404, 404, 200, 200, 200, 404), (302, 405, 405, 405, 405, 405, 405)),
    "projects:list":                ((302, 404, 200, 200, 200, 200, 404), (302, 405, 405, 405, 405, 405, 405)),
    "projects:member_remove":       ((302, 404, 404, 403, 200, 200, 404), (302, 404, 404, 403, 302, 302, 404)),
    "projects:member_role":         ((302, 405, 405, 405, 405, 405, 405), (302, 404, 404, 403, 302, 302, 404)),
    "projects:members":             ((302, 404, 404, 200, 200, 200, 404), (302, 404, 404, 403, 200, 200, 404)),
    "projects:overview":            ((302, 404, 404, 200, 200, 200, 404), (302, 405, 405, 405, 405, 405, 405)),
    "projects:restore":             ((302, 405, 405, 405, 405, 405, 405), (302, 404, 404, 403, 403, 302, 404)),
    "projects:settings":            ((302, 404, 404, 200, 200, 200, 404), (302, 405, 405, 405, 405, 405, 405)),
    "projects:settings_general":    ((302, 405, 405, 405, 405, 405, 405), (302, 404, 404, 403, 403, 200, 404)),
    "projects:settings_limits":     ((302, 405, 405, 405, 405, 405, 405), (302, 404, 404, 403, 302, 302, 404)),
}

# Patterns that name no organization, project, key, invitation, invoice or document. Stripe's
# webhook is a machine endpoint authenticated by its signature (tests/stripe's webhook tests).
UNSCOPED = {"home", "healthz", "readyz", "orgs:create", "stripe_webhook"}
GATEWAY_PREFIX = "api/v1/gateway/"


def scoped_patterns() -> dict[str, str]:
    patterns = {}
    for name, _pattern, route in url_patterns():
        if route.startswith(GATEWAY_PREFIX) or name in UNSCOPED:
            continue
        patterns[name] = route
    return patterns


def url_for(world: World, name: str, route: str, *, org_kwargs: dict) -> str:
    kwargs = {}
    for key in ("org_id", "project_id", "key_id", "member_id", "membership_id", "invitation_id", "request_id",
                "number", "payment_id", "intent_id"):
        if f":{key}>" in route:
            kwargs[key] = org_kwargs[key]
    if ":token>" in route:
        kwargs["token"] = world.invitation_token
    return reverse(name, kwargs=kwargs)


def attempt(world: World, actor: str, method: str, name: str, url: str) -> int:
    client = world.client(actor)
    with transaction.atomic():
        if name in ("orgs:invitation", "orgs:invitation_accept"):
            # These act on the invitation the visitor's session holds: open the link first.
            client.get(reverse("orgs:invitation_open", args=[world.invitation_token]))
        response = client.get(url) if method == "GET" else client.post(url, {})
        transaction.set_rollback(True)
    if response.status_code == 302 and actor == "anonymous" and name != "orgs:invitation_open":
        assert response["Location"].startswith(reverse("account_login")), (name, method, response["Location"])
    if response.status_code == 200 and response["Content-Type"].startswith("text/html"):
        # Every page carries the Content-Security-Policy, never with inline scripts allowed.
        script_src = response["Content-Security-Policy"].split("script-src")[1].split(";")[0]
        assert "'unsafe-inline'" not in script_src and "'nonce-" in script_src, (name, method, script_src)
    return response.status_code


@pytest.fixture
def world(stripe_fake) -> World:
    """With card payments configured (against localstripe), so the payment pages answer as in production."""
    return build_world()


def test_every_scoped_pattern_has_an_entry():
    missing = sorted(set(scoped_patterns()) - set(MATRIX))
    stale = sorted(set(MATRIX) - set(scoped_patterns()))
    assert missing == [], f"URL patterns without an access matrix entry (add them to MATRIX): {missing}"
    assert stale == [], f"MATRIX entries for patterns that no longer exist: {stale}"


def test_outsiders_are_always_404_in_the_table():
    routes = scoped_patterns()
    for name, methods in MATRIX.items():
        if "<str:org_id>" not in routes.get(name, ""):
            continue  # invitation links: the token, not an organization, is in the URL
        for method, statuses in zip(METHODS, methods, strict=True):
            outsider = statuses[COLUMNS.index("outsider")]
            signed_in = statuses[2:]
            # 405 only where no signed-in visitor may use the method: it says nothing of the ids.
            assert outsider == 404 or (outsider == 405 and set(signed_in) == {405}), (name, method, outsider)


matrix_figures = FIGURES.setdefault(
    "access matrix", {"URL patterns": len(scoped_patterns()), "visitors": len(COLUMNS), "methods": len(METHODS),
                      "requests": 0},
)


@pytest.mark.parametrize("name", sorted(scoped_patterns()))
def test_access(world: World, name: str):
    route = scoped_patterns()[name]
    if name not in MATRIX and not os.environ.get("MATRIX_PRINT"):
        pytest.fail(f"{name} has no access matrix entry")
    url = url_for(world, name, route, org_kwargs=world.home.kwargs)
    observed = {method: tuple(attempt(world, actor, method, name, url) for actor in COLUMNS) for method in METHODS}
    matrix_figures["requests"] += len(METHODS) * len(COLUMNS)
    want = dict(zip(METHODS, MATRIX.get(name, ((), ())), strict=True))
    if os.environ.get("MATRIX_PRINT"):
        print(f'\n    "{name}": ({observed["GET"]}, {observed["POST"]}),')
    for method, statuses in observed.items():
        assert 500 not in statuses, (name, method, dict(zip(COLUMNS, statuses, strict=True)))
    # On a difference: {method: {actor: (expected, observed)}}
    assert observed == want, {
        method: {actor: pair for actor, *pair in zip(COLUMNS, want[method], observed[method], strict=True)
                 if pair[0] != pair[1]}
        for method in METHODS
    }
    # The outsider with their own organization's id in front of this organization's objects.
    if "<str:org_id>" in route and set(re.findall(r"<\w+:(\w+)>", route)) != {"org_id"}:
        mixed = dict(world.home.kwargs, org_id=world.other.kwargs["org_id"])
        url = url_for(world, name, route, org_kwargs=mixed)
        for method in METHODS:
            status = attempt(world, "outsider", method, name, url)
            matrix_figures["requests"] += 1
            assert status == 404 or (status == 405 and set(want[method][2:]) == {405}), (method, status)
