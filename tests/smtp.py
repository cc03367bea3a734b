"""A real SMTP server process for email tests, and Django switched to its SMTP backend.

    def test_x(smtp):            # Django now sends through SMTP to a fresh, empty server
        ...
        [received] = smtp.messages()
        assert received.subject == "..." and received.html

Registered by tests/fixtures.py (`pytest_plugins`). The server (tests/smtp_server.py, aiosmtpd)
is started once per session on a free loopback port; `smtp` empties its mailbox per test.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import cast

import pytest
from pytest_django.fixtures import Settings

SERVER_SCRIPT = Path(__file__).with_name("smtp_server.py")


@dataclass(frozen=True)
class ReceivedEmail:
    envelope_to: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return cast(EmailMessage, part).get_content() if part is not None else ""

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        return cast(EmailMessage, part).get_content() if part is not None else ""


@dataclass
class SMTPServer:
    host: str
    port: int
    maildir: Path

    def messages(self) -> list[ReceivedEmail]:
        """What the server accepted, oldest first."""
        received = []
        for eml in sorted(self.maildir.glob("*.eml")):
            envelope = json.loads(eml.with_suffix(".json").read_text())
            message = cast(EmailMessage, message_from_bytes(eml.read_bytes(), policy=policy.default))
            received.append(ReceivedEmail(envelope_to=envelope["rcpt_tos"], message=message))
        return received

    def fail_next(self, count: int = 1, reply: str = "451 4.3.0 Temporary failure, try again later") -> None:
        """Refuse the next `count` messages at DATA with `reply` (4xx: try again; 5xx: refused)."""
        (self.maildir / "fail").write_text(f"{count} {reply}")

    def delay(self, seconds: float) -> None:
        """Answer DATA only after `seconds`, so concurrent senders overlap."""
        (self.maildir / "delay").write_text(str(seconds))

    def reset(self) -> None:
        for path in self.maildir.iterdir():
            path.unlink()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_listening(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"The SMTP test server exited: {stderr}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("The SMTP test server did not start listening within 15 s.")


@pytest.fixture(scope="session")
def smtp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SMTPServer]:
    maildir = tmp_path_factory.mktemp("smtp")
    port = _free_port()
    process = subprocess.Popen(  # noqa: S603 (our own script, fixed arguments)
        [sys.executable, str(SERVER_SCRIPT), "--port", str(port), "--maildir", str(maildir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_until_listening(process, port)
        yield SMTPServer(host="127.0.0.1", port=port, maildir=maildir)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def smtp(smtp_server: SMTPServer, settings: Settings) -> SMTPServer:
    """Django sends through its SMTP backend to the (emptied) test server."""
    smtp_server.reset()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = smtp_server.host
    settings.EMAIL_PORT = smtp_server.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    return smtp_server
