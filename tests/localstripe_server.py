"""localstripe (a fake, stateful Stripe server) on a loopback port, for the tests and `make run`.

`python -m tests.localstripe_server [--port N] [--webhook-url URL --webhook-secret S]` prints
`PORT <n>` once it listens (port 0, the default, picks a free one) and, given a webhook URL, sends
its signed events there (`make run` points it at the dev server's /stripe/webhook).

Unlike `python -m localstripe`, it keeps its state in memory only: localstripe pickles its whole
store to /tmp/localstripe.pickle on every write, which is slow and would be shared by every
instance on the machine.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys

from aiohttp import web
from localstripe import resources, server, webhooks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--webhook-url", default="")
    parser.add_argument("--webhook-secret", default="")
    args = parser.parse_args()
    if args.webhook_url:
        webhooks.register_webhook("console", args.webhook_url, args.webhook_secret, None)
    resources.Store.dump_to_disk = lambda self: None  # type: ignore[method-assign]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    web.run_app(server.app, sock=sock, print=None, access_log=logging.getLogger("aiohttp.access"))


if __name__ == "__main__":
    main()
