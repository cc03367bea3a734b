"""The members page: the member list, invitations (admins), role changes, removal and leaving."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from allauth.account.decorators import reauthentication_required
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from console.errors import DomainError, form_add_error
from console.http import AuthedHttpRequest
from console.paging import paginate

from ..forms import (
    InvitationFilterForm,
    InvitationForm,
    RoleChangeForm,
)
from ..hooks import (
    invitation_project_choices,
    invitation_project_roles,
    member_demotion_impact,
    member_removal_impact,
)
from ..models import Membership, Organization, Role
from ..permissions import (
    access_invitation,
    access_member,
    access_organization,
    is_last_admin,
)
from ..selectors import (
    invitation_rows,
    invitations_for_organization,
    invite_blockers,
    members_for_organization,
)
from ..services import (
    IssuedInvitation,
    invitation_create,
    invitation_resend,
    invitation_revoke,
    membership_remove,
    membership_role_change,
)

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
        except DomainError as error:
            form_add_error(form, error)
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
    except DomainError as error:
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
    except DomainError as error:
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
    if form.is_valid() and target.is_demotion(form.cleaned_data["role"]):
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
        except DomainError as error:
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
        "last_admin": is_last_admin(target),
    }
    return render(request, "orgs/member_remove.html", context)


@reauthentication_required
def _member_remove(request: AuthedHttpRequest, *, target: Membership) -> HttpResponse:
    organization = target.organization
    leaving = target.user_id == request.user.pk
    try:
        membership_remove(membership=target, actor=request.user)
    except DomainError as error:
        messages.error(request, error.message)
        return redirect("orgs:member_remove", org_id=organization.public_id, membership_id=target.pk)
    if leaving:
        messages.success(request, f"You left {organization.name}.")
        return redirect("home")
    messages.success(request, f"{target.user.display_name} was removed from {organization.name}.")
    return redirect("orgs:members", org_id=organization.public_id)
