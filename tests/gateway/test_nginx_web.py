"""Real nginx as the console's reverse proxy (deploy/nginx/console-site.conf.template): the audit log
records the address nginx saw, never what the client wrote into X-Forwarded-For."""

from __future__ import annotations

import http.client
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from string import Template

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from orgs.models import AuditEvent, Role
from orgs.tests.factories import MembershipFactory, OrganizationFactory

from .processes import nginx_config
from .test_nginx import NGINX, free_port, running

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "nginx" / "console-site.conf.template"
CLIENT_ADDRESS = "127.0.0.3"  # the visitor: a loopback address of its own, so nginx's differs


@pytest.fixture(params=[{"CONSOLE_TRUSTED_PROXIES": "127.0.0.1"}, {"CONSOLE_TRUSTED_PROXY_HOPS": "1"}],
                ids=["trusted-proxies", "hop-count"])
def web(request, tmp_path: Path) -> Iterator[int]:
    """gunicorn (console.wsgi) configured as deploy/README.md says, behind nginx from the template."""
    if NGINX is None:
        pytest.skip("nginx is not installed (make nginx installs Debian's nginx-light)")
    db = connection.settings_dict
    console_port, port = free_port(), free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "console.settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        **request.param,
    }
    gunicorn = [sys.executable, "-m", "gunicorn", "console.wsgi", "-b", f"127.0.0.1:{console_port}", "-w", "1"]
    conf = Template(TEMPLATE.read_text()).safe_substitute(
        CONSOLE_UPSTREAM=f"127.0.0.1:{console_port}", CONSOLE_LISTEN=f"127.0.0.1:{port}"
    )
    nginx_config(tmp_path, conf)
    with (
        running("gunicorn", gunicorn, console_port, tmp_path / "gunicorn.log", cwd=ROOT, env=env),
        running("nginx", [NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")], port,
                tmp_path / "nginx.out"),
    ):
        yield port


def visit(port: int, method: str, path: str, *, cookies: dict[str, str], body: str = "",
          headers: dict[str, str] | None = None) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(CLIENT_ADDRESS, 0))
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    all_headers = {"Cookie": cookie, **(headers or {})}
    if body:
        all_headers["Content-Type"] = "application/x-www-form-urlencoded"
    connection.request(method, path, body=body.encode(), headers=all_headers)
    response = connection.getresponse()
    text = response.read().decode()
    connection.close()
    return response.status, text


def test_the_audit_log_records_the_address_nginx_saw(web):
    org = OrganizationFactory()
    admin = MembershipFactory(organization=org, role=Role.ADMIN).user
    client = Client()
    client.force_login(admin)
    cookies = {settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value,
               settings.CSRF_COOKIE_NAME: "a" * 32}
    path = f"/o/{org.public_id}/settings/information/"
    status, _page = visit(web, "GET", path, cookies=cookies)
    assert status == 200
    form = (f"csrfmiddlewaretoken={'a' * 32}&name=Renamed&registered_email=billing%40example.com"
            "&legal_address=1+Main+St&country=DE&tax_number=DE1&website=")
    status, _ = visit(web, "POST", path, cookies=cookies, body=form, headers={"X-Forwarded-For": "6.6.6.6"})
    assert status == 302
    event = AuditEvent.objects.get(action="organization.update")
    assert event.ip == CLIENT_ADDRESS  # not 6.6.6.6, and not nginx's own 127.0.0.1
