from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from allauth.account.decorators import reauthentication_required
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from console.http import AuthedHttpRequest, HtmxHttpRequest
from console.paging import paginate

from .documents import document_download_name
from .exceptions import InvitationInvalid, OrgError
from .forms import (
    AuditFilterForm,
    ContactSalesForm,
    InvitationFilterForm,
    InvitationForm,
    OrganizationCreateForm,
    OrganizationInformationForm,
    RoleChangeForm,
    VerificationRequestForm,
)
from .hooks import (
    invitation_project_choices,
    invitation_project_roles,
    member_demotion_impact,
    member_removal_impact,
)
from .invitations import (
    SESSION_JOINED,
    forget_pending,
    invitation_token_digest,
    mask_email,
    pending_digest,
    remember_pending,
)
from .models import Membership, Organization, Role, SalesNeed, VerificationStatus
from .permissions import (
    access_invitation,
    access_member,
    access_organization,
    access_verification_document,
)
from .selectors import (
    admin_count,
    audit_events_for_organization,
    audit_filter_choices,
    invitation_by_digest,
    invitation_rows,
    invitations_for_organization,
    invite_blockers,
    invited_projects,
    limits_usage,
    members_for_organization,
    verification_requests_for_organization,
)
from .services import (
    IssuedInvitation,
    contact_sales_request_create,
    invitation_accept,
    invitation_create,
    invitation_resend,
    invitation_revoke,
    membership_remove,
    membership_role_change,
    membership_touch,
    organization_create,
    organization_update,
    user_has_verified_email,
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
            except OrgError as error:
                form.add_error(None, error.message)
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
        filename=document_download_name(verification),  # never the uploader's name
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


# --- members -------------------------------------------------------------------------------------

INVITATIONS_PER_PAGE = 25


def _invitation_form(organization: Organization, data: Any = None) -> InvitationForm:
    return InvitationForm(
        data,
        projects=invitation_project_choices(organization=organization),
        project_roles=invitation_project_roles(),
    )


def _members_context(
    request: AuthedHttpRequest,
    membership: Membership,
    *,
    invite_form: InvitationForm | None = None,
    issued: IssuedInvitation | None = None,
) -> dict[str, Any]:
    organization = membership.organization
    context: dict[str, Any] = {
        "membership": membership,
        "org": organization,
        "members": members_for_organization(organization=organization),
    }
    if membership.is_admin:
        filters = InvitationFilterForm(request.GET)
        status = filters.cleaned_data["status"] if filters.is_valid() else ""
        invitations = invitations_for_organization(organization=organization, status=status)
        page, query = paginate(request, invitations, per_page=INVITATIONS_PER_PAGE)
        # Resend/revoke post back with the list's state, so the same page and filter come back.
        list_query = urlencode({"status": status, "page": page.number})
        context.update(
            blockers=invite_blockers(organization=organization),
            invite_form=invite_form or _invitation_form(organization),
            invitation_page=page,
            invitation_rows=invitation_rows(organization=organization, invitations=page.object_list),
            invitation_status=status,
            invitation_query=query,
            invitation_list_query=list_query,
            status_choices=InvitationFilterForm.base_fields["status"].choices,  # type: ignore[attr-defined]
            issued=issued,
            issued_link=request.build_absolute_uri(issued.path) if issued else "",
            role_choices=Role.choices,
        )
    return context


def _render_members(request: AuthedHttpRequest, context: dict[str, Any], *, status: int = 200) -> HttpResponse:
    template = "orgs/members.html#invitations" if request.htmx else "orgs/members.html"
    return render(request, template, context, status=status)


@login_required
@require_GET
def members(request: AuthedHttpRequest, org_id: str) -> HttpResponse:
    membership = access_organization(request.user, org_id)
    context = _members_context(request, membership)
    if request.htmx and membership.is_admin:  # the invitation list's filter and pages
        return render(request, "orgs/members.html#invitation-list", context)
    return render(request, "orgs/members.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def invitation_create_view(request: AuthedHttpRequest, org_id: str) -> HttpResponse:
    membership = access_organization(request.user, org_id, min_role=Role.ADMIN)
    organization = membership.organization
    if request.method == "GET":  # the address bar after a form error shows this URL: back to the form
        return redirect(reverse("orgs:members", kwargs={"org_id": organization.public_id}) + "#invite")
    form = _invitation_form(organization, request.POST)
    issued = None
    if form.is_valid():
        try:
            issued = invitation_create(
                organization=organization,
                actor=request.user,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                valid_days=form.cleaned_data["valid_days"],
                project_grants=form.cleaned_data["project_grants"],
            )
        except OrgError as error:
            fields = {"already_member": "email", "already_invited": "email", "invalid_project": "projects"}
            form.add_error(fields.get(error.code), error.message)
        else:
            messages.success(request, f"Invitation for {issued.invitation.email} created and emailed.")
            form = _invitation_form(organization)
    return _render_members(request, _members_context(request, membership, invite_form=form, issued=issued))


@login_required
@require_POST
def invitation_resend_view(request: AuthedHttpRequest, org_id: str, invitation_id: int) -> HttpResponse:
    membership, invitation = access_invitation(request.user, org_id, invitation_id)
    issued = None
    try:
        issued = invitation_resend(invitation=invitation, actor=request.user)
    except OrgError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"A new link for {invitation.email} was emailed; the previous link no longer works.")
    return _render_members(request, _members_context(request, membership, issued=issued))


@login_required
@require_POST
def invitation_revoke_view(request: AuthedHttpRequest, org_id: str, invitation_id: int) -> HttpResponse:
    membership, invitation = access_invitation(request.user, org_id, invitation_id)
    try:
        invitation_revoke(invitation=invitation, actor=request.user)
    except OrgError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Invitation for {invitation.email} revoked; its link no longer works.")
    return _render_members(request, _members_context(request, membership))


@login_required
@require_POST
def member_role_change(request: AuthedHttpRequest, org_id: str, membership_id: int) -> HttpResponse:
    own, target = access_member(request.user, org_id, membership_id)
    if not own.is_admin:
        raise PermissionDenied("Only organization administrators can change roles.")
    form = RoleChangeForm(request.POST)
    if form.is_valid() and target.is_admin and form.cleaned_data["role"] < Role.ADMIN:
        impact = member_demotion_impact(membership=target)
        if impact.api_keys and not request.POST.get("confirmed"):
            # Demoting revokes keys: say which before anything changes (the password comes after).
            context = {
                "membership": own,
                "org": own.organization,
                "target": target,
                "self_demotion": target.pk == own.pk,
                "role": form.cleaned_data["role"],
                "role_label": Role(form.cleaned_data["role"]).label,
                "impact": impact,
            }
            return render(request, "orgs/member_role_confirm.html", context)
    return _member_role_change(request, target=target)


@reauthentication_required
def _member_role_change(request: AuthedHttpRequest, *, target: Membership) -> HttpResponse:
    form = RoleChangeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a valid role.")
    else:
        try:
            changed = membership_role_change(membership=target, actor=request.user, role=form.cleaned_data["role"])
        except OrgError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"{target.user.display_name} is now {changed.get_role_display()}.")
    return redirect("orgs:members", org_id=target.organization.public_id)


@login_required
@require_http_methods(["GET", "POST"])
def member_remove(request: AuthedHttpRequest, org_id: str, membership_id: int) -> HttpResponse:
    own, target = access_member(request.user, org_id, membership_id)
    if request.method == "POST":
        return _member_remove(request, target=target)
    context = {
        "membership": own,
        "org": own.organization,
        "target": target,
        "leaving": target.pk == own.pk,
        "impact": member_removal_impact(membership=target),
        "last_admin": target.is_admin and admin_count(organization=own.organization) <= 1,
    }
    return render(request, "orgs/member_remove.html", context)


@reauthentication_required
def _member_remove(request: AuthedHttpRequest, *, target: Membership) -> HttpResponse:
    organization = target.organization
    leaving = target.user_id == request.user.pk
    try:
        membership_remove(membership=target, actor=request.user)
    except OrgError as error:
        messages.error(request, error.message)
        return redirect("orgs:member_remove", org_id=organization.public_id, membership_id=target.pk)
    if leaving:
        messages.success(request, f"You left {organization.name}.")
        return redirect("home")
    messages.success(request, f"{target.user.display_name} was removed from {organization.name}.")
    return redirect("orgs:members", org_id=organization.public_id)


# --- following an invitation link (not organization-scoped) ------------------------------------


def invitation_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Invitation pages never leak their URL onward and are never cached."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response["Referrer-Policy"] = "no-referrer"
        response["Cache-Control"] = "no-store"
        return response

    return wrapper


def _invitation_invalid(request: HttpRequest) -> HttpResponse:
    return render(request, "orgs/invitation_invalid.html", status=404)


@invitation_page
@require_GET
def invitation_open(request: HtmxHttpRequest, token: str) -> HttpResponse:
    """The link itself: remember the invitation in the session and move the token out of the address bar."""
    digest = invitation_token_digest(token)
    if invitation_by_digest(digest=digest) is None:
        return _invitation_invalid(request)
    remember_pending(request.session, digest)
    return redirect("orgs:invitation")


@invitation_page
@require_GET
def invitation_detail(request: HtmxHttpRequest) -> HttpResponse:
    joined = request.session.pop(SESSION_JOINED, None)
    if joined:
        return redirect("orgs:overview", org_id=joined)
    digest = pending_digest(request.session)
    invitation = invitation_by_digest(digest=digest) if digest else None
    if invitation is None:
        forget_pending(request.session)
        return _invitation_invalid(request)
    organization = invitation.organization
    context: dict[str, Any] = {
        "invitation": invitation,
        "org_name": organization.name,
        "projects": invited_projects(invitation=invitation),
    }
    user = request.user
    if not user.is_authenticated:
        context["signup_url"] = reverse("account_signup") + "?" + urlencode({"email": invitation.email})
        return render(request, "orgs/invitation.html", context)
    if Membership.objects.filter(organization=organization, user=user).exists():
        forget_pending(request.session)
        context["already_member"] = True
    elif not user_has_verified_email(user=user, email=invitation.email):  # type: ignore[arg-type]
        context["wrong_email"] = mask_email(invitation.email)
    return render(request, "orgs/invitation.html", context)


@invitation_page
@login_required
@require_POST
def invitation_accept_view(request: AuthedHttpRequest) -> HttpResponse:
    digest = pending_digest(request.session)
    if digest is None:
        return _invitation_invalid(request)
    try:
        membership = invitation_accept(digest=digest, user=request.user)
    except InvitationInvalid:
        forget_pending(request.session)
        return _invitation_invalid(request)
    except OrgError as error:
        messages.error(request, error.message)
        return redirect("orgs:invitation")
    forget_pending(request.session)
    organization = membership.organization
    messages.success(request, f"Welcome to {organization.name}! You joined as {membership.get_role_display()}.")
    return redirect("orgs:overview", org_id=organization.public_id)


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
            except OrgError as error:
                form.add_error(None, error.message)
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
