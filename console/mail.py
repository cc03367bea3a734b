"""The embedded email backend: print each message to the console and keep a copy in a file."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.console import EmailBackend as ConsoleBackend

_file_lock = threading.Lock()


class ConsoleAndFileBackend(ConsoleBackend):
    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        sent = super().send_messages(email_messages)
        path = Path(settings.CONSOLE_EMAIL_FILE)
        path.parent.mkdir(parents=True, exist_ok=True)
        with _file_lock, path.open("a", encoding="utf-8") as fh:
            for message in email_messages:
                fh.write(message.message().as_string())
                fh.write("\n" + "-" * 79 + "\n")
        return sent
