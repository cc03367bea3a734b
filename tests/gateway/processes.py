"""Real server processes for the gateway tests: each on a free loopback port, its output in a log,
stopped (or killed) by the test that started it. Never the machine's shared PostgreSQL or Redis."""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes], name: str, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            pytest.fail(f"{name} exited: {log.read_text(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"{name} did not start listening")
            time.sleep(0.05)


def start(args: list[str], log: Path, **popen: Any) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:  # the child keeps its own copy of the file
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, **popen)  # noqa: S603 -- ours


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextmanager
def running(name: str, args: list[str], port: int, log: Path, **popen: Any) -> Iterator[subprocess.Popen[bytes]]:
    """A server process, its output in `log`, until it listens on `port`; stopped on exit."""
    process = start(args, log, **popen)
    try:
        wait_listening(port, process, name, log)
        yield process
    finally:
        stop(process)


def django_env(*, database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "console.settings.test",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        **extra,
    }


def gunicorn_args(port: int, *, workers: int = 1) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "console.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(workers),
            "--graceful-timeout", "2"]


def children(pid: int) -> list[int]:
    """The pids of a process's children (gunicorn's master → its workers)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


# --- Redis: our own server, stopped and started again on the same port ---------------------------


class RedisServer:
    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.directory)]
        log = self.directory / "redis.log"
        self.process = start(args, log)
        wait_listening(self.port, self.process, "redis-server", log)

    def kill(self) -> None:
        """SIGKILL: the server is gone at once, as in a crash."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


# --- PostgreSQL behind a TCP proxy the test can cut ---------------------------------------------


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to PostgreSQL. `cut()` drops every open connection and refuses
    new ones (as a network partition or a dead server would); `restore()` lets them through again."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = int(self.listener.getsockname()[1])
        self.open = threading.Event()
        self.open.set()
        self.closing = False
        self.lock = threading.Lock()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open.is_set():
                client.close()  # refused: the database is "unreachable"
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        sockets = [client, upstream]
        try:
            while True:
                readable, _, _ = select.select(sockets, [], [], 1.0)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is client else client).sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for sock in sockets:
                with suppress(OSError):
                    sock.close()

    def cut(self) -> None:
        self.open.clear()
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for sock in pair:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def restore(self) -> None:
        self.open.set()

    def close(self) -> None:
        self.closing = True
        self.cut()
        self.listener.close()


# --- nginx (Debian's package) with one of deploy/nginx/'s templates ---------------------------------

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


def nginx_config(directory: Path, site: str) -> Path:
    """A complete nginx.conf around `site` (a rendered template), everything under `directory`."""
    temp_paths = "\n".join(
        f"  {name}_temp_path {directory / name};" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (directory / "site.conf").write_text(site)
    config = directory / "nginx.conf"
    config.write_text(
        f"""{"user root;" if os.geteuid() == 0 else ""}
daemon off;
worker_processes 1;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
{temp_paths}
  include {directory / "site.conf"};
}}
"""
    )
    return config
