"""The browser journeys fail on any Content-Security-Policy violation: this checks the watcher itself."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_injected_inline_script_is_blocked_and_reported(live_server, page: Page, csp_violations):
    page.goto(live_server.url + "/accounts/login/")
    expect(page.get_by_role("button", name="Sign In")).to_be_visible()
    assert csp_violations == []
    # What an XSS would do: put an inline script into the page. The policy refuses to run it.
    page.evaluate(
        """() => { const s = document.createElement("script"); s.textContent = "window.pwned = true";
                   document.body.appendChild(s); }"""
    )
    page.wait_for_timeout(200)  # the console event arrives asynchronously
    assert page.evaluate("() => window.pwned === undefined")
    assert any("script-src" in line for line in csp_violations), csp_violations
    csp_violations.clear()  # seen and expected: the fixture must not fail this test


def test_htmx_runs_under_the_policy(live_server, page: Page, client_as, org, csp_violations):
    """htmx itself (no eval, no inline script) works with the policy: a modal loads in place."""
    from projects.tests.factories import ProjectFactory

    client = client_as("admin")
    project = ProjectFactory(organization=org, name="Atlas")
    cookie = client.cookies["sessionid"]
    page.context.add_cookies([{"name": "sessionid", "value": cookie.value, "url": live_server.url}])
    page.goto(f"{live_server.url}/o/{org.public_id}/projects/{project.public_id}/keys/")
    page.get_by_role("link", name="Create new secret key").first.click()
    expect(page.locator("#modal").get_by_role("button", name="Create secret key")).to_be_visible()
    assert csp_violations == []
