"""The client's address behind reverse proxies, for the audit log, the request log and allauth's
rate limits; and whether the request came over HTTPS (`X-Forwarded-Proto`, from our proxies only).

`X-Forwarded-For` is a list anyone can start: a client sends `X-Forwarded-For: 6.6.6.6` and each
proxy appends the address it saw. Only the entries our own proxies appended mean anything, so
the header is read only as far as the configured proxies vouch for it:

- ``CONSOLE_TRUSTED_PROXIES`` (addresses or CIDRs): walking from the socket's peer leftwards
  through the header, every trusted address is skipped; the first untrusted one is the client.
  A peer that is not a trusted proxy is the client, whatever the header says.
- ``CONSOLE_TRUSTED_PROXY_HOPS`` (a count): exactly that many proxies stand in front of the
  console, so the client is that many entries from the right (counting the peer). Only safe
  when nothing can reach the console except through those proxies.
- Neither (the default): the header is ignored and the socket's address is the client.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.core.checks import CheckMessage, Error, register
from django.http import HttpRequest

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())


def _address(value: str) -> IPAddress | None:
    """An address from a header entry (ports and IPv6 brackets tolerated), or None if it is not one."""
    value = value.strip()
    if value.startswith("["):  # [2001:db8::1]:443
        value = value[1:].partition("]")[0]
    elif value.count(":") == 1:  # 203.0.113.7:51000
        value = value.partition(":")[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def client_address(
    request: HttpRequest, *, trusted: tuple[str, ...] | None = None, hops: int | None = None
) -> str | None:
    """The client's IP address as the configured proxies vouch for it (see the module's doc)."""
    trusted = tuple(settings.CONSOLE_TRUSTED_PROXIES) if trusted is None else trusted
    hops = settings.CONSOLE_TRUSTED_PROXY_HOPS if hops is None else hops
    peer = _address(request.META.get("REMOTE_ADDR", "") or "")
    if peer is None:
        return None
    if not trusted and not hops:
        return str(peer)
    header = request.META.get("HTTP_X_FORWARDED_FOR", "")
    chain = [*(entry for entry in header.split(",") if entry.strip()), str(peer)] if header else [str(peer)]
    if hops:
        # The client is `hops` entries left of the peer; a shorter chain did not pass our proxies.
        if len(chain) <= hops:
            return str(peer)
        return str(_address(chain[-1 - hops]) or peer)
    networks = _networks(trusted)
    nearest = peer
    for entry in reversed(chain):
        address = _address(entry)
        if address is None:  # a trusted proxy passed on garbage: the last address it vouched for
            return str(nearest)
        if not any(address in network for network in networks):
            return str(address)
        nearest = address
    return str(nearest)  # every hop is one of ours: the leftmost is as close to the client as we get


def peer_is_trusted_proxy(request: HttpRequest) -> bool:
    """Whether the socket's peer is one of the configured proxies, whose other forwarded headers
    (`X-Forwarded-Proto`) count. With a hop count every peer is (nothing else reaches the console)."""
    if settings.CONSOLE_TRUSTED_PROXY_HOPS:
        return True
    peer = _address(request.META.get("REMOTE_ADDR", "") or "")
    return peer is not None and any(peer in network for network in _networks(tuple(settings.CONSOLE_TRUSTED_PROXIES)))


@register()
def check_trusted_proxies(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    try:
        _networks(tuple(settings.CONSOLE_TRUSTED_PROXIES))
    except ValueError as error:
        errors.append(
            Error(
                f"CONSOLE_TRUSTED_PROXIES: {error}.",
                hint="List proxy addresses or CIDRs, comma-separated, e.g. 10.0.0.5,10.1.0.0/16.",
                id="console.E101",
            )
        )
    if settings.CONSOLE_TRUSTED_PROXIES and settings.CONSOLE_TRUSTED_PROXY_HOPS:
        errors.append(
            Error(
                "Set CONSOLE_TRUSTED_PROXIES or CONSOLE_TRUSTED_PROXY_HOPS, not both.",
                hint="A list of proxy addresses is the safer of the two.",
                id="console.E102",
            )
        )
    if settings.CONSOLE_TRUSTED_PROXY_HOPS < 0:
        errors.append(Error("CONSOLE_TRUSTED_PROXY_HOPS cannot be negative.", id="console.E103"))
    return errors
