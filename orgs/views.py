from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from console.http import AuthedHttpRequest

from .forms import AuditFilterForm, OrganizationCreateForm, OrganizationInformationForm
from .models import Role
from .permissions import access_organization
from .selectors import audit_events_for_organization, audit_filter_choices
from .services import membership_touch, organization_create, organization_update


@login_required
@require_http_methods(["GET", "POST"])
def organization_create_view(request: AuthedHttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = OrganizationCreateForm(request.POST)
        if form.is_valid():
            organization = organization_create(actor=request.user, **form.cleaned_data)
            messages.success(request, f"Organization “{organization.name}” created. You are its administrator.")
            return redirect("orgs:overview", org_id=organization.public_id)
    else:
        form = OrganizationCreateForm(initial={"registered_email": request.user.email})
    return render(request, "orgs/create.html", {"form": form})


@login_required
@require_GET
def organization_overview(request: AuthedHttpRequest, org_id: str) -> HttpResponse:
    membership = access_organization(request.user, org_id)
    membership_touch(membership=membership)
    return render(request, "orgs/overview.html", {"membership": membership, "org": membership.organization})


@login_required
@require_http_methods(["GET", "POST"])
def organization_information(request: AuthedHttpRequest, org_id: str) -> HttpResponse:
    membership = access_organization(request.user, org_id)
    organization = membership.organization
    if request.method == "POST":
        membership = access_organization(request.user, org_id, min_role=Role.ADMIN)
        form = OrganizationInformationForm(request.POST)
        if form.is_valid():
            organization = organization_update(organization=organization, actor=request.user, data=form.cleaned_data)
            messages.success(request, "Organization information saved.")
            if not request.htmx:
                return redirect("orgs:information", org_id=organization.public_id)
            form = OrganizationInformationForm(initial=OrganizationInformationForm.initial_for(organization))
    else:
        form = OrganizationInformationForm(initial=OrganizationInformationForm.initial_for(organization))
    context = {"membership": membership, "org": organization, "form": form}
    template = "orgs/information.html#information-panel" if request.htmx else "orgs/information.html"
    return render(request, template, context)


@login_required
@require_GET
def organization_verification(request: AuthedHttpRequest, org_id: str) -> HttpResponse:
    membership = access_organization(request.user, org_id)
    return render(
        request, "orgs/verification.html", {"membership": membership, "org": membership.organization}
    )


@login_required
@require_GET
def audit_log(request: AuthedHttpRequest, org_id: str) -> HttpResponse:
    membership = access_organization(request.user, org_id, min_role=Role.ADMIN)
    organization = membership.organization
    form = AuditFilterForm(request.GET)
    filters = form.cleaned_data if form.is_valid() else {}
    events = audit_events_for_organization(
        organization=organization, action=filters.get("action") or "", actor_id=filters.get("actor")
    )
    page = Paginator(events, 25).get_page(request.GET.get("page"))
    actions, actors = audit_filter_choices(organization=organization)
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "membership": membership,
        "org": organization,
        "page": page,
        "actions": actions,
        "actors": actors,
        "filters": filters,
        "query": query.urlencode(),
    }
    template = "orgs/audit_log.html#audit-table" if request.htmx else "orgs/audit_log.html"
    return render(request, template, context)


@login_required
@require_GET
def members_placeholder(request: AuthedHttpRequest, org_id: str) -> HttpResponse:
    membership = access_organization(request.user, org_id)
    return render(
        request,
        "components/coming_soon.html",
        {
            "membership": membership,
            "org": membership.organization,
            "title": "Members",
            "lede": "Invite teammates with a dedicated link and manage their roles.",
            "body": "Member management is being built. For now, you are the only member listed here.",
        },
    )


@login_required
@require_GET
def contact_sales_placeholder(request: AuthedHttpRequest, org_id: str) -> HttpResponse:
    membership = access_organization(request.user, org_id)
    return render(
        request,
        "components/coming_soon.html",
        {
            "membership": membership,
            "org": membership.organization,
            "title": "Contact Sales",
            "lede": "Ask for more projects, more API keys or higher rate limits.",
            "body": "The Contact Sales form is being built.",
        },
    )
