"""What every page's layout needs: the user's organizations, the current one, the balance banner."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from billing.selectors.pages import balance_banner
from orgs.selectors import memberships_for_user


def console(request: HttpRequest) -> dict[str, Any]:
    """The header's organization switcher and the current organization (from the URL's org_id)."""
    context: dict[str, Any] = {"CONSOLE_CURRENCY": settings.CONSOLE_CURRENCY}
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return context
    memberships = list(memberships_for_user(user=user))
    org_id = request.resolver_match.kwargs.get("org_id") if request.resolver_match else None
    current = next((m for m in memberships if m.organization.public_id == org_id), None)
    context.update(org_memberships=memberships, current_membership=current)
    if current is not None:
        context["current_org"] = current.organization
        if current.is_admin:
            context["balance_banner"] = balance_banner(organization_id=current.organization_id)
    return context
