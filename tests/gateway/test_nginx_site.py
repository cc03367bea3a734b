"""deploy/nginx/console-site.conf.template in real nginx, in front of gunicorn: bodies over the
limits are refused by nginx (413) before they reach the console; the rest passes through."""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Iterator
from pathlib import Path
from string import Template

import pytest
from django.db import connection

from tests.gateway.processes import NGINX, ROOT, django_env, free_port, gunicorn_args, nginx_config, running

pytestmark = pytest.mark.django_db(transaction=True)

TEMPLATE = ROOT / "deploy" / "nginx" / "console-site.conf.template"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[int]:
    if NGINX is None:
        pytest.skip("nginx is not installed (make nginx installs Debian's nginx-light)")
    db = connection.settings_dict
    console_port, port = free_port(), free_port()
    env = django_env(database_url=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
                     redis_url=os.environ["REDIS_URL"])
    rendered = Template(TEMPLATE.read_text()).safe_substitute(
        CONSOLE_UPSTREAM=f"127.0.0.1:{console_port}", CONSOLE_LISTEN=f"127.0.0.1:{port}"
    )
    config = nginx_config(tmp_path, rendered)
    with running("gunicorn", gunicorn_args(console_port), console_port, tmp_path / "gunicorn.log", cwd=ROOT,
                 env=env), \
         running("nginx", [NGINX, "-p", str(tmp_path), "-c", str(config)], port, tmp_path / "nginx.out"):
        yield port
    log = tmp_path / "error.log"
    if log.exists() and "[emerg]" in log.read_text():
        pytest.fail(log.read_text())


def post(port: int, path: str, size: int, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=b"x" * size, headers={"Host": "localhost", **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read()
    except (BrokenPipeError, ConnectionResetError):
        return 413, b""  # nginx answered 413 and closed while the body was still being sent
    finally:
        conn.close()


def test_a_page_body_over_11_mb_is_refused_by_nginx(site):
    status, body = post(site, "/accounts/login/", 12 * 1024 * 1024)
    assert status == 413
    assert b"nginx" in body or body == b""  # nginx's own page: the console never saw it


def test_a_page_body_under_the_limit_reaches_the_console(site):
    status, body = post(site, "/accounts/login/", 1000, {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 403  # the console's CSRF check answered: the request got through
    assert b"nginx" not in body


def test_a_usage_body_over_1_mb_is_refused_by_nginx_and_under_reaches_the_console(site):
    assert post(site, "/api/v1/gateway/usage", 2 * 1024 * 1024)[0] == 413
    status, body = post(site, "/api/v1/gateway/usage", 10, {"X-Gateway-Token": "wrong"})
    assert status == 401
    assert json.loads(body)["error"]["code"] == "invalid_gateway_token"
