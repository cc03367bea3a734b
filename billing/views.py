from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from console.http import AuthedHttpRequest
from orgs.models import Role
from orgs.permissions import access_organization


@login_required
@require_GET
def billing_overview(request: AuthedHttpRequest, org_id: str) -> HttpResponse:
    membership = access_organization(request.user, org_id, min_role=Role.ADMIN)
    return render(
        request,
        "components/coming_soon.html",
        {
            "membership": membership,
            "org": membership.organization,
            "title": "Billing",
            "lede": "Your prepaid balance, top-ups, usage charges and invoices.",
            "body": "Billing is being built. Your balance and ledger will appear here.",
        },
    )
