"""Real nginx (Debian's package) in front of a stub model server, asking the console as production
serves it: gunicorn running console.wsgi (the gateway API on its own middleware stack).

The configuration is deploy/nginx/console-gateway.conf.template, rendered the way the README
says. Shows: a valid key reaches the upstream with the ids; a revoked key gets 401; an
over-budget project gets 403 with the JSON code; a TPM burst gets 429 with Retry-After; more than
Tier0's concurrency and RPM get 429s naming the limit (nginx frees each slot with post_action).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from string import Template
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from billing.models import ProjectSpend
from billing.tests.conftest import within_one_minute
from billing.tests.factories import PriceFactory, ProjectFactory, fund, make_api_key
from projects.models import APIKey, Project
from tests.gateway.processes import nginx_config

pytestmark = pytest.mark.django_db(transaction=True)

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "console-gateway.conf.template"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


class EchoUpstream(BaseHTTPRequestHandler):
    """The model server: answers with the headers the gateway forwarded."""

    def _echo(self) -> None:
        if self.path.startswith("/slow"):
            time.sleep(1.5)  # a call in flight while the test sends another
        body = json.dumps({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _echo

    def log_message(self, format: str, *args: object) -> None:
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def upstream() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoUpstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@contextmanager
def running(name: str, args: list[str], port: int, log: Path, **popen: Any) -> Iterator[None]:
    """A server process, its output in `log`, until it listens on `port`; stopped on exit."""
    with log.open("wb") as out:  # the child keeps its own copy of the file
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, **popen)  # noqa: S603 -- ours
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                pytest.fail(f"{name} exited: {log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{name} did not start listening")
                time.sleep(0.05)
        yield
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def console(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """gunicorn with console.wsgi on the test database (the tests here commit their data)."""
    db = connection.settings_dict
    port = free_port()
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "console.settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
    }
    gunicorn = [sys.executable, "-m", "gunicorn", "console.wsgi", "-b", f"127.0.0.1:{port}", "-w", "2"]
    with running("gunicorn", gunicorn, port, log, cwd=Path(__file__).resolve().parents[2], env=env):
        # Listening is not serving: each worker loads Django after the port opens. Warm both up so
        # the first test's call does not run into nginx's 5 s timeout on a busy machine.
        for _ in range(4):
            warm = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            warm.request("GET", "/healthz")
            warm.getresponse().read()
            warm.close()
        yield port, log


@pytest.fixture
def nginx(tmp_path: Path, console: tuple[int, Path], upstream: int) -> Iterator[int]:
    if NGINX is None:
        pytest.skip("nginx is not installed (make nginx installs Debian's nginx-light)")
    port = free_port()
    gateway_conf = Template(TEMPLATE.read_text()).safe_substitute(
        CONSOLE_UPSTREAM=f"127.0.0.1:{console[0]}",
        CONSOLE_HOST="localhost",
        CONSOLE_GATEWAY_TOKEN="test-gateway-token",
        MODEL_UPSTREAM=f"127.0.0.1:{upstream}",
        GATEWAY_LISTEN=f"127.0.0.1:{port}",
    )
    nginx_config(tmp_path, gateway_conf)
    with running("nginx", [NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")], port,
                 tmp_path / "nginx.out"):
        yield port
    log = tmp_path / "error.log"
    if log.exists() and "[emerg]" in log.read_text():
        pytest.fail(log.read_text())


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: dict


def call(port: int, raw_key: str, *, estimate: int | None = None, extra: dict[str, str] | None = None,
         path: str = "/v1/chat/completions") -> Answer:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Authorization": f"Bearer {raw_key}", "Content-Type": "application/json", **(extra or {})}
    if estimate is not None:
        headers["X-Estimated-Tokens"] = str(estimate)
    connection.request("POST", path, body=b'{"model": "m"}', headers=headers)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(body or b"{}"))


@pytest.fixture
def funded_key():
    PriceFactory(model="m")
    raw, key = make_api_key()
    fund(key.organization, "20")
    return raw, key


def test_a_valid_key_reaches_the_upstream_with_the_ids(nginx, funded_key):
    raw, key = funded_key
    answer = call(nginx, raw, extra={"X-Organization-Id": "org-spoofed", "X-Gateway-Token": "guess"})
    assert answer.status == 200
    forwarded = answer.body["headers"]
    assert answer.body["path"] == "/v1/chat/completions"
    assert forwarded["x-organization-id"] == key.organization.public_id  # the client's value was replaced
    assert forwarded["x-project-id"] == key.project.public_id
    assert forwarded["x-key-id"] == key.public_id
    assert "x-gateway-token" not in forwarded
    assert int(answer.headers["x-ratelimit-remaining-tokens"]) > 0


def test_one_request_id_in_the_gateway_the_console_and_the_model_server(nginx, console, funded_key):
    raw, _key = funded_key
    answer = call(nginx, raw, extra={"X-Request-ID": "client-chosen"})
    request_id = answer.headers["x-request-id"]
    assert request_id != "client-chosen"
    assert answer.body["headers"]["x-request-id"] == request_id
    _port, log = console
    deadline = time.monotonic() + 5
    while f"request_id={request_id}" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f"request_id={request_id}" in log.read_text()


def test_a_revoked_key_gets_401_with_the_console_json(nginx, funded_key):
    raw, key = funded_key
    assert call(nginx, raw).status == 200
    APIKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
    answer = call(nginx, raw)
    assert answer.status == 401
    assert answer.body["error"]["code"] == "invalid_api_key"
    assert answer.headers["content-type"] == "application/json"


def test_an_over_budget_project_gets_403_with_the_json_code(nginx, funded_key):
    raw, key = funded_key
    Project.objects.filter(pk=key.project_id).update(daily_budget=Decimal("1.00"))
    ProjectSpend.objects.create(project=key.project, period="day", period_start=timezone.now().date(),
                                spent=Decimal("1.00"))
    answer = call(nginx, raw)
    assert answer.status == 403
    assert answer.body["error"]["code"] == "daily_budget_exceeded"


def test_a_tpm_burst_gets_429_with_retry_after(nginx, funded_key):
    raw, key = funded_key
    Project.objects.filter(pk=key.project_id).update(tpm_limit=3000)
    statuses = [call(nginx, raw, estimate=1000).status for _ in range(3)]
    burst = call(nginx, raw, estimate=1000)
    assert statuses == [200, 200, 200]
    assert burst.status == 429
    assert burst.body["error"]["code"] == "rate_limited"
    assert 1 <= int(burst.headers["retry-after"]) <= 120
    # Another project of the organization still has room.
    other_raw, _ = make_api_key(project=ProjectFactory(organization=key.organization))
    assert call(nginx, other_raw, estimate=1000).status == 200


def test_more_than_tier0_concurrency_and_rpm_get_429_with_the_right_limit(nginx):
    """Tier0: 1 concurrent request, 3 per minute. nginx frees the slot after each answer (post_action)."""
    PriceFactory(model="m")
    raw, key = make_api_key()
    fund(key.organization, "1")
    within_one_minute(10)
    in_flight: list[Answer] = []
    slow = threading.Thread(target=lambda: in_flight.append(call(nginx, raw, path="/slow")))
    slow.start()
    time.sleep(0.5)  # authorized (milliseconds) and now at the model server for 1.5 s
    second = call(nginx, raw)
    slow.join()
    assert in_flight[0].status == 200
    assert in_flight[0].body["headers"]["x-authorization-id"]  # for whoever reports its usage
    assert second.status == 429
    assert (second.body["error"]["code"], second.body["error"]["limit"], second.body["error"]["scope"]) == (
        "rate_limited", "concurrency", "organization")
    assert second.headers["retry-after"] == "1"
    answers = [_after_release(nginx, raw) for _ in range(2)]  # the 2nd and 3rd request of the minute
    assert [a.status for a in answers] == [200, 200]
    assert answers[0].headers["x-ratelimit-limit-requests"] == "3"
    assert answers[-1].headers["x-ratelimit-remaining-requests"] == "0"
    fourth = _after_release(nginx, raw)
    assert fourth.status == 429
    assert (fourth.body["error"]["limit"], fourth.body["error"]["scope"]) == ("requests_per_minute", "organization")
    for name in ("limit-requests", "remaining-requests", "reset-requests", "limit-tokens", "remaining-tokens",
                 "reset-tokens"):
        assert fourth.headers[f"x-ratelimit-{name}"], name
    assert 1 <= int(fourth.headers["retry-after"]) <= 120


def _after_release(port: int, raw: str) -> Answer:
    """A call once the previous one's post_action release has reached the console."""
    deadline = time.monotonic() + 5
    while True:
        answer = call(port, raw)
        limited = answer.status == 429 and answer.body["error"]["limit"] == "concurrency"
        if not limited or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)
