"""Base views: home (last used organization), health and readiness checks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from kombu import Connection  # type: ignore[attr-defined]

from billing.limiter import get_limiter, limiter_failures
from console.http import AuthedHttpRequest
from orgs.selectors import memberships_for_user


@login_required
@require_GET
def home(request: AuthedHttpRequest) -> HttpResponse:
    """Land in the last used organization, or on "Create your organization" when there is none."""
    membership = memberships_for_user(user=request.user).first()
    if membership is None:
        return redirect("orgs:create")
    return redirect("orgs:overview", org_id=membership.organization.public_id)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive (no dependency is checked: a load balancer restarts on failure)."""
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_broker() -> None:
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
    broker = Connection(settings.CELERY_BROKER_URL, transport_options=options, connect_timeout=2)  # type: ignore[no-untyped-call]
    with broker as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready to serve: the database and the Celery broker answer (the rate limiter is reported too)."""
    checks: dict[str, Any] = {}
    ok = True
    for name, check in (("database", _check_database), ("broker", _check_broker)):
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:  # any failure means not ready; the reason is reported
            checks[name] = f"error: {exc.__class__.__name__}"
            ok = False
    # The rate limiter fails open for all four limits (calls stay authorized without it): reported, never "unready".
    checks["rate_limiter"] = "ok" if get_limiter().ping() else "error: unreachable, failing open"
    failures, last_failure = limiter_failures()
    limiter = {
        "failures": failures,
        "last_failure_at": datetime.fromtimestamp(last_failure, tz=UTC).isoformat() if failures else None,
    }
    return JsonResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks, "rate_limiter": limiter},
        status=200 if ok else 503,
    )
