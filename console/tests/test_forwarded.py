"""The audit log's IP: X-Forwarded-For counts only as far as the configured proxies vouch for it."""

from __future__ import annotations

import itertools

import pytest
from django.core.checks import run_checks
from django.test import RequestFactory
from django.urls import reverse

from console.forwarded import client_address
from orgs.models import AuditEvent

INFO = {
    "name": "Renamed",
    "registered_email": "billing@example.com",
    "legal_address": "1 Main St",
    "country": "DE",
    "tax_number": "DE1",
    "website": "",
}


_names = itertools.count()


def audited_ip(client, org, **headers) -> str | None:
    """Change the organization's information through the page; the IP its audit event recorded."""
    AuditEvent.objects.filter(action="organization.update").delete()
    INFO["name"] = f"Renamed {next(_names)}"
    response = client.post(reverse("orgs:information", args=[org.public_id]), INFO, **headers)
    assert response.status_code == 302
    return AuditEvent.objects.get(action="organization.update").ip


@pytest.mark.django_db
def test_by_default_a_forwarded_header_is_ignored(client_as, org):
    """The review's reproduction: X-Forwarded-For: 6.6.6.6 from 127.0.0.1 recorded 6.6.6.6."""
    client = client_as("admin")
    assert audited_ip(client, org, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6") == "127.0.0.1"


@pytest.mark.django_db
def test_behind_a_trusted_proxy_the_address_it_saw_is_recorded(client_as, org, settings):
    settings.CONSOLE_TRUSTED_PROXIES = ["10.0.0.5", "10.1.0.0/16"]
    client = client_as("admin")
    # nginx (10.0.0.5) appended the address it saw; what the client put in front is ignored.
    forwarded = "6.6.6.6, 198.51.100.23"
    assert audited_ip(client, org, REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR=forwarded) == "198.51.100.23"
    # Two of our proxies in a row (a load balancer in 10.1/16, then nginx).
    forwarded = "6.6.6.6, 198.51.100.23, 10.1.4.4"
    assert audited_ip(client, org, REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR=forwarded) == "198.51.100.23"


@pytest.mark.django_db
def test_a_header_from_an_untrusted_peer_is_ignored(client_as, org, settings):
    settings.CONSOLE_TRUSTED_PROXIES = ["10.0.0.5"]
    client = client_as("admin")
    assert audited_ip(client, org, REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="6.6.6.6") == "203.0.113.9"


@pytest.mark.django_db
def test_a_hop_count_takes_that_many_entries_from_the_right(client_as, org, settings):
    settings.CONSOLE_TRUSTED_PROXY_HOPS = 1
    client = client_as("admin")
    forwarded = "6.6.6.6, 198.51.100.23"
    assert audited_ip(client, org, REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR=forwarded) == "198.51.100.23"
    # No header at all: the request did not pass the proxy; the socket's address is all there is.
    assert audited_ip(client, org, REMOTE_ADDR="10.0.0.5") == "10.0.0.5"


@pytest.mark.parametrize(
    ("peer", "header", "expected"),
    [
        ("10.0.0.5", "not-an-ip, 198.51.100.23", "198.51.100.23"),
        ("10.0.0.5", "198.51.100.23:51000", "198.51.100.23"),
        ("10.0.0.5", "[2001:db8::7]:443", "2001:db8::7"),
        ("10.0.0.5", "garbage", "10.0.0.5"),  # our proxy vouched for nothing usable: itself
        ("10.0.0.5", "10.0.0.5", "10.0.0.5"),  # every hop ours
        ("10.0.0.5", "", "10.0.0.5"),
        ("garbage", "198.51.100.23", None),
    ],
)
def test_odd_headers(peer, header, expected):
    request = RequestFactory().get("/", REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=header)
    assert client_address(request, trusted=("10.0.0.0/8",), hops=0) == expected


@pytest.mark.django_db
def test_the_request_log_line_carries_the_same_address(client, caplog):
    client.get("/accounts/login/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6")
    lines = [r.msg for r in caplog.records if isinstance(r.msg, dict) and r.msg.get("event") == "request_finished"]
    assert [line["ip"] for line in lines] == ["127.0.0.1"]


def test_bad_settings_are_system_check_errors(settings):
    settings.CONSOLE_TRUSTED_PROXIES = ["10.0.0.0/33"]
    assert "console.E101" in [m.id for m in run_checks()]
    settings.CONSOLE_TRUSTED_PROXIES = ["10.0.0.5"]
    settings.CONSOLE_TRUSTED_PROXY_HOPS = 1
    assert "console.E102" in [m.id for m in run_checks()]


@pytest.mark.django_db
def test_login_rate_limits_count_per_client_behind_our_proxy(client, settings):
    """allauth's login limit counts the client our proxy vouches for: behind nginx, one client's
    attempts do not lock out everyone else (they would share the proxy's address)."""
    from django.core.cache import cache

    cache.clear()
    settings.ACCOUNT_RATE_LIMITS = {"login": "3/m/ip"}
    settings.CONSOLE_TRUSTED_PROXIES = ["127.0.0.1"]
    url = reverse("account_login")

    def attempt(forwarded_for: str) -> int:
        response = client.post(url, {"login": "nobody@example.com", "password": "wrong"},
                               REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=forwarded_for)
        return response.status_code

    assert [attempt("203.0.113.7") for _ in range(4)] == [200, 200, 200, 429]
    assert attempt("198.51.100.9") == 200  # another client behind the same proxy
    settings.CONSOLE_TRUSTED_PROXIES = []  # nobody vouches: the header is the client's word, not a way out
    assert [attempt(f"192.0.2.{n}") for n in range(4)] == [200, 200, 200, 429]  # all count as 127.0.0.1
    cache.clear()


@pytest.mark.django_db
@pytest.mark.parametrize(("trusted", "status"), [([], 301), (["127.0.0.1"], 200)])
def test_x_forwarded_proto_counts_only_from_a_trusted_proxy(client, settings, trusted, status):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    settings.CONSOLE_TRUSTED_PROXIES = trusted
    response = client.get(reverse("account_login"), REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == status
    if status == 301:
        assert response["Location"].startswith("https://")
