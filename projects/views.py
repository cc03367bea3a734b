from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from console.http import AuthedHttpRequest
from orgs.permissions import access_organization


@login_required
@require_GET
def project_list(request: AuthedHttpRequest, org_id: str) -> HttpResponse:
    membership = access_organization(request.user, org_id)
    return render(
        request,
        "components/coming_soon.html",
        {
            "membership": membership,
            "org": membership.organization,
            "title": "Projects",
            "lede": "Split work into projects, each with its own API keys, budgets and rate limits.",
            "body": "Projects are being built. Once they arrive, this page lists your organization's projects.",
        },
    )
