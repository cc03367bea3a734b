"""Organization pages: create, overview, information, verification, audit log, Contact Sales."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from console.errors import DomainError, form_add_error
from console.http import AuthedHttpRequest
from console.paging import paginate

from ..forms import (
    AuditFilterForm,
    ContactSalesForm,
    OrganizationCreateForm,
    OrganizationInformationForm,
    VerificationRequestForm,
)
from ..models import Role, SalesNeed, VerificationStatus
from ..permissions import (
    access_organization,
    access_verification_document,
)
from ..selectors import (
    audit_events_for_organization,
    audit_filter_choices,
    limits_usage,
    verification_requests_for_organization,
)
from ..services import (
    contact_sales_request_create,
    membership_touch,
    organization_create,
    organization_update,
    verification_submit,
)


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
@require_http_methods(["GET", "POST"])
def organization_verification(request: AuthedHttpRequest, org_id: str) -> HttpResponse:
    membership = access_organization(request.user, org_id)
    organization = membership.organization
    if request.method == "POST":
        membership = access_organization(request.user, org_id, min_role=Role.ADMIN)
        form = VerificationRequestForm(request.POST, request.FILES)
        if form.is_valid():
            data = {k: v for k, v in form.cleaned_data.items() if k != "document"}
            try:
                verification_submit(
                    organization=organization, actor=request.user, data=data, document=form.cleaned_data["document"]
                )
            except DomainError as error:
                form_add_error(form, error)
            else:
                messages.success(request, "Verification request submitted. We will email you when it is reviewed.")
                return redirect("orgs:verification", org_id=organization.public_id)
    else:
        previous = verification_requests_for_organization(organization=organization).first()
        form = VerificationRequestForm(
            initial=VerificationRequestForm.initial_for(organization, request.user, previous=previous)
        )
    can_submit = membership.is_admin and organization.verification_status in (
        VerificationStatus.NOT_VERIFIED,
        VerificationStatus.REJECTED,
    )
    context = {
        "membership": membership,
        "org": organization,
        "form": form if can_submit else None,
        "limits": limits_usage(organization=organization),
        "history": verification_requests_for_organization(organization=organization) if membership.is_admin else [],
    }
    return render(request, "orgs/verification.html", context)


@login_required
@require_GET
def verification_document(request: AuthedHttpRequest, org_id: str, request_id: int) -> FileResponse:
    verification = access_verification_document(request.user, org_id, request_id)
    response = FileResponse(
        verification.document.open("rb"),
        as_attachment=True,
        filename=verification.document_name,
        content_type=verification.document_content_type,
    )
    # A document is never rendered in the console's origin, nor cached by a shared proxy.
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, no-store"
    return response


AUDIT_EVENTS_PER_PAGE = 25


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
    page, query = paginate(request, events, per_page=AUDIT_EVENTS_PER_PAGE)
    actions, actors = audit_filter_choices(organization=organization)
    context = {
        "membership": membership,
        "org": organization,
        "page": page,
        "actions": actions,
        "actors": actors,
        "filters": filters,
        "query": query,
    }
    template = "orgs/audit_log.html#audit-table" if request.htmx else "orgs/audit_log.html"
    return render(request, template, context)


# --- Contact Sales -------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def contact_sales(request: AuthedHttpRequest, org_id: str) -> HttpResponse:
    membership = access_organization(request.user, org_id)
    organization = membership.organization
    status = 200
    if request.method == "POST":
        form = ContactSalesForm(request.POST)
        if form.is_valid():
            try:
                contact_sales_request_create(organization=organization, actor=request.user, data=form.cleaned_data)
            except DomainError as error:
                form_add_error(form, error)
                status = 429 if error.code == "rate_limited" else 200
            else:
                return redirect("orgs:contact_sales_done", org_id=organization.public_id)
    else:
        need = request.GET.get("need", "")
        form = ContactSalesForm(
            initial={
                "name": request.user.name,
                "email": request.user.email,
                "company": organization.name,
                "need": need if need in SalesNeed.values else SalesNeed.OTHER,
            }
        )
    return render(
        request, "orgs/contact_sales.html", {"membership": membership, "org": organization, "form": form}, status=status
    )


@login_required
@require_GET
def contact_sales_done(request: AuthedHttpRequest, org_id: str) -> HttpResponse:
    membership = access_organization(request.user, org_id)
    return render(request, "orgs/contact_sales_done.html", {"membership": membership, "org": membership.organization})
