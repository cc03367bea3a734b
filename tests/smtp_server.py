"""A real SMTP server for the tests (aiosmtpd), run as its own process by the `smtp_server` fixture.

    python tests/smtp_server.py --port 2525 --maildir /tmp/mail

Each accepted message is written to <maildir>/<n>.eml, its envelope to <n>.json. Control files
the tests write into <maildir>:
  fail   "N REPLY" refuses the next N messages at DATA with REPLY (e.g. "1 451 4.3.0 Try later")
  delay  seconds to wait before answering DATA (to make concurrent senders overlap)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class MaildirHandler:
    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir
        self.counter = itertools.count(1)

    def _take_failure(self) -> str | None:
        control = self.maildir / "fail"
        if not control.exists():
            return None
        count, _, reply = control.read_text().strip().partition(" ")
        if int(count) <= 0:
            return None
        control.write_text(f"{int(count) - 1} {reply}")
        return reply

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        delay = self.maildir / "delay"
        if delay.exists():
            await asyncio.sleep(float(delay.read_text()))
        refusal = self._take_failure()
        if refusal:
            return refusal
        number = next(self.counter)
        stem = self.maildir / f"{number:05d}"
        (self.maildir / f".{number}.json").write_text(
            json.dumps({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos})
        )
        os.replace(self.maildir / f".{number}.json", stem.with_suffix(".json"))
        # The .eml appears last and atomically: a reader never sees half a message.
        (self.maildir / f".{number}.eml").write_bytes(envelope.original_content)
        os.replace(self.maildir / f".{number}.eml", stem.with_suffix(".eml"))
        return "250 2.0.0 Message accepted"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", type=Path, required=True)
    args = parser.parse_args()
    args.maildir.mkdir(parents=True, exist_ok=True)
    controller = Controller(MaildirHandler(args.maildir), hostname=args.host, port=args.port)
    controller.start()
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    controller.stop()


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    main()
