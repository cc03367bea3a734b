"""Project pages: list, overview, API keys, members and settings.

Every action works as a plain form post; with htmx the same views answer with the page's partial
(and modals are loaded into #modal). A response that shows a key's plaintext is never cached.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget

from console.errors import DomainError, form_add_error
from console.http import AuthedHttpRequest
from orgs.limits import LimitReached, organization_rate_limits
from orgs.models import Role
from orgs.permissions import access_organization

from .forms import (
    APIKeyCreateForm,
    APIKeyRollForm,
    ProjectForm,
    ProjectLimitsForm,
    ProjectMemberAddForm,
    ProjectMemberRoleForm,
)
from .models import APIKey, Project, ProjectRole
from .permissions import (
    ProjectAccess,
    access_api_key,
    access_project,
    access_project_member,
    may_revoke_key,
    may_roll_key,
    may_see_key,
)
from .selectors import (
    addable_org_members,
    api_key_limit,
    api_keys_for_project,
    archived_project_count,
    keys_revoked_by_removal,
    project_limit,
    project_members,
    project_stats,
    projects_for_organization,
)
from .services import (
    CreatedKey,
    api_key_create,
    api_key_revoke,
    api_key_roll,
    project_archive,
    project_create,
    project_limits_update,
    project_member_add,
    project_member_change_role,
    project_member_remove,
    project_restore,
    project_update,
)

KEYS_PER_PAGE = 50


@dataclass(frozen=True)
class KeyRow:
    """A key as the current user sees it: others' keys are masked for general members."""

    key: APIKey
    visible: bool
    revocable: bool
    rollable: bool


def _context(access: ProjectAccess, **extra: Any) -> dict[str, Any]:
    context = {
        "membership": access.membership,
        "org": access.organization,
        "project": access.project,
        "access": access,
        **extra,
    }
    if access.project.is_archived and access.is_org_admin:
        # The archived banner offers "Restore project"; say up front when the limit forbids it.
        context["project_limit"] = project_limit(organization=access.organization)
    return context


def _page_or_partial(request: AuthedHttpRequest, template: str, partial: str, context: dict[str, Any]) -> HttpResponse:
    return render(request, f"{template}#{partial}" if request.htmx else template, context)


def _modal_errors(response: HttpResponse) -> HttpResponse:
    """A modal form with errors is re-rendered in place of the modal, not of the page's panel."""
    return reswap(retarget(response, "#modal"), "innerHTML")


# --- project list and creation -------------------------------------------------------------------


@login_required
@require_GET
def project_list(request: AuthedHttpRequest, org_id: str) -> HttpResponse:
    membership = access_organization(request.user, org_id)
    organization = membership.organization
    archived = request.GET.get("archived") == "1"
    context = {
        "membership": membership,
        "org": organization,
        "archived": archived,
        "projects": projects_for_organization(organization=organization, user=request.user, archived=archived),
        "archived_count": archived_project_count(organization=organization),
        "limit": project_limit(organization=organization),
    }
    return _page_or_partial(request, "projects/list.html", "project-list", context)


@login_required
@require_http_methods(["GET", "POST"])
def project_create_view(request: AuthedHttpRequest, org_id: str) -> HttpResponse:
    membership = access_organization(request.user, org_id, min_role=Role.ADMIN)
    organization = membership.organization
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            project = project_create(organization=organization, actor=request.user, **form.cleaned_data)
        except LimitReached:
            pass  # the page's limit alert says so, with the Contact Sales link
        except DomainError as error:
            form_add_error(form, error)
        else:
            messages.success(request, f"Project “{project.name}” created. Add members and create API keys here.")
            return redirect("projects:overview", org_id=org_id, project_id=project.public_id)
    limit = project_limit(organization=organization)
    return render(
        request, "projects/create.html", {"membership": membership, "org": organization, "form": form, "limit": limit}
    )


# --- overview -------------------------------------------------------------------------------------


@login_required
@require_GET
def project_overview(request: AuthedHttpRequest, org_id: str, project_id: str) -> HttpResponse:
    access = access_project(request.user, org_id, project_id)
    context = _context(
        access,
        tab="overview",
        stats=project_stats(project=access.project),
        org_limits=organization_rate_limits(access.organization),
    )
    return render(request, "projects/overview.html", context)


# --- API keys -------------------------------------------------------------------------------------


def _keys_context(
    request: AuthedHttpRequest, access: ProjectAccess, created: CreatedKey | None = None
) -> dict[str, Any]:
    organization = access.organization
    page = Paginator(api_keys_for_project(project=access.project), KEYS_PER_PAGE).get_page(request.GET.get("page"))
    rows = [
        KeyRow(
            key=key,
            visible=may_see_key(role=access.role, owner_id=key.created_by_id, user_id=request.user.pk),
            revocable=key.revoked_at is None
            and may_revoke_key(role=access.role, owner_id=key.created_by_id, user_id=request.user.pk),
            rollable=key.is_rollable and may_roll_key(owner_id=key.created_by_id, user_id=request.user.pk),
        )
        for key in page.object_list
    ]
    return _context(
        access,
        tab="keys",
        page=page,
        rows=rows,
        created=created,
        limit=api_key_limit(organization=organization),
    )


def _render_keys(request: AuthedHttpRequest, access: ProjectAccess, created: CreatedKey | None = None) -> HttpResponse:
    response = _page_or_partial(request, "projects/keys.html", "keys-panel", _keys_context(request, access, created))
    if created is not None:
        add_never_cache_headers(response)  # the plaintext is in this response and nowhere else
    return response


@login_required
@require_GET
def key_list(request: AuthedHttpRequest, org_id: str, project_id: str) -> HttpResponse:
    return _render_keys(request, access_project(request.user, org_id, project_id))


@login_required
@require_http_methods(["GET", "POST"])
def key_create(request: AuthedHttpRequest, org_id: str, project_id: str) -> HttpResponse:
    access = access_project(request.user, org_id, project_id)
    form = APIKeyCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            created = api_key_create(
                project=access.project,
                actor=request.user,
                name=form.cleaned_data["name"],
                expires_at=form.cleaned_data["expires_on"],
            )
        except LimitReached:
            pass  # the form's limit alert says so, with the Contact Sales link
        except DomainError as error:
            form_add_error(form, error)
        else:
            return _render_keys(request, access, created)
    organization = access.organization
    limit = api_key_limit(organization=organization)
    return _action_response(
        request,
        access,
        body="projects/key_create.html",
        title="Create API key",
        tab="keys",
        form=form,
        limit=limit,
        limit_reached=not limit.allowed,
    )


def _action_response(
    request: AuthedHttpRequest, access: ProjectAccess, *, body: str, title: str, tab: str, **extra: Any
) -> HttpResponse:
    """An action's form or confirmation: a modal for htmx (errors re-rendered in the modal), else its own page."""
    context = _context(access, tab=tab, modal=bool(request.htmx), body=body, action_title=title, **extra)
    if not request.htmx:
        return render(request, "projects/_action.html", context)
    response = render(request, "projects/_action.html#modal", context)
    return _modal_errors(response) if request.method == "POST" else response


@login_required
@require_http_methods(["GET", "POST"])
def key_revoke(request: AuthedHttpRequest, org_id: str, project_id: str, key_id: str) -> HttpResponse:
    access = access_project(request.user, org_id, project_id)
    key = access_api_key(access, key_id)
    if not may_revoke_key(role=access.role, owner_id=key.created_by_id, user_id=request.user.pk):
        raise PermissionDenied("You can only revoke your own keys.")
    if request.method == "POST":
        key = api_key_revoke(key=key, actor=request.user)
        messages.success(request, f"Key “{key.name}” ({key.hint}) revoked. It no longer works.")
        if request.htmx:
            return _render_keys(request, access)
        return redirect("projects:keys", org_id=org_id, project_id=project_id)
    return _action_response(
        request, access, body="projects/key_revoke.html", title="Revoke API key", tab="keys", key=key
    )


@login_required
@require_http_methods(["GET", "POST"])
def key_roll(request: AuthedHttpRequest, org_id: str, project_id: str, key_id: str) -> HttpResponse:
    access = access_project(request.user, org_id, project_id)
    key = access_api_key(access, key_id)
    if not may_roll_key(owner_id=key.created_by_id, user_id=request.user.pk):
        raise PermissionDenied("You can only roll your own keys.")
    form = APIKeyRollForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            created = api_key_roll(
                key=key,
                actor=request.user,
                overlap=form.cleaned_data["overlap"],
                expires_at=form.cleaned_data["expires_on"],
            )
        except DomainError as error:
            form_add_error(form, error)
        else:
            return _render_keys(request, access, created)
    return _action_response(
        request, access, body="projects/key_roll.html", title="Roll API key", tab="keys", form=form, key=key
    )


# --- members ----------------------------------------------------------------------------------------


def _members_context(access: ProjectAccess, form: ProjectMemberAddForm | None = None) -> dict[str, Any]:
    candidates = addable_org_members(project=access.project)
    return _context(
        access,
        tab="members",
        members=project_members(project=access.project),
        form=form or ProjectMemberAddForm(users=candidates),
        has_candidates=candidates.exists(),
        roles=ProjectRole.choices,
    )


def _members_done(request: AuthedHttpRequest, access: ProjectAccess) -> HttpResponse:
    org_id, project_id = access.organization.public_id, access.project.public_id
    try:
        access = access_project(request.user, org_id, project_id)  # the change may have been to oneself
    except Http404:
        url = reverse("projects:list", args=[org_id])
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    if request.htmx:
        return render(request, "projects/members.html#members-panel", _members_context(access))
    return redirect("projects:members", org_id=org_id, project_id=project_id)


@login_required
@require_http_methods(["GET", "POST"])
def member_list(request: AuthedHttpRequest, org_id: str, project_id: str) -> HttpResponse:
    if request.method == "GET":
        access = access_project(request.user, org_id, project_id)
        return _page_or_partial(request, "projects/members.html", "members-panel", _members_context(access))
    access = access_project(request.user, org_id, project_id, min_role=ProjectRole.ADMIN)
    form = ProjectMemberAddForm(request.POST, users=addable_org_members(project=access.project))
    if form.is_valid():
        try:
            added = project_member_add(project=access.project, actor=request.user, **form.cleaned_data)
        except DomainError as error:
            form_add_error(form, error)
        else:
            messages.success(request, f"{added.user.email} added as {added.get_role_display()}.")
            return _members_done(request, access)
    return _page_or_partial(request, "projects/members.html", "members-panel", _members_context(access, form))


@login_required
@require_POST
def member_role(request: AuthedHttpRequest, org_id: str, project_id: str, member_id: int) -> HttpResponse:
    access = access_project(request.user, org_id, project_id, min_role=ProjectRole.ADMIN)
    project_membership = access_project_member(access, member_id)
    form = ProjectMemberRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a project role.")
        return _members_done(request, access)
    try:
        changed = project_member_change_role(
            project_membership=project_membership, actor=request.user, role=form.cleaned_data["role"]
        )
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"{changed.user.email} is now {changed.get_role_display()}.")
    return _members_done(request, access)


@login_required
@require_http_methods(["GET", "POST"])
def member_remove(request: AuthedHttpRequest, org_id: str, project_id: str, member_id: int) -> HttpResponse:
    access = access_project(request.user, org_id, project_id, min_role=ProjectRole.ADMIN)
    project_membership = access_project_member(access, member_id)
    if request.method == "POST":
        try:
            revoked = project_member_remove(project_membership=project_membership, actor=request.user)
        except DomainError as error:
            messages.error(request, error.message)
        else:
            messages.success(
                request,
                f"{project_membership.user.email} removed from the project; "
                f"{revoked} API key{pluralize(revoked)} revoked.",
            )
        return _members_done(request, access)
    keys = keys_revoked_by_removal(project=access.project, user=project_membership.user)
    return _action_response(
        request,
        access,
        body="projects/member_remove.html",
        title="Remove member",
        tab="members",
        member=project_membership,
        keys=keys,
        remove_label=f"Remove member and revoke {len(keys)} key{pluralize(len(keys))}" if keys else "Remove member",
    )


# --- settings ---------------------------------------------------------------------------------------


def _settings_context(
    access: ProjectAccess,
    general_form: ProjectForm | None = None,
    limits_form: ProjectLimitsForm | None = None,
) -> dict[str, Any]:
    project = access.project
    return _context(
        access,
        tab="settings",
        general_form=general_form or ProjectForm(initial=ProjectForm.initial_for(project)),
        limits_form=limits_form or ProjectLimitsForm(initial=ProjectLimitsForm.initial_for(project)),
        org_limits=organization_rate_limits(access.organization),
    )


@login_required
@require_GET
def project_settings(request: AuthedHttpRequest, org_id: str, project_id: str) -> HttpResponse:
    access = access_project(request.user, org_id, project_id)
    return render(request, "projects/settings.html", _settings_context(access))


def _settings_response(
    request: AuthedHttpRequest, access: ProjectAccess, partial: str, *, saved: bool, **forms: Any
) -> HttpResponse:
    """After a save: back to the page (or a fresh panel for htmx); with errors: the panel with its form."""
    if saved and not request.htmx:
        return redirect("projects:settings", org_id=access.organization.public_id, project_id=access.project.public_id)
    return _page_or_partial(request, "projects/settings.html", partial, _settings_context(access, **forms))


def _settings_save(
    request: AuthedHttpRequest,
    access: ProjectAccess,
    *,
    form: ProjectForm | ProjectLimitsForm,
    form_name: str,
    partial: str,
    save: Callable[..., Project],
    success: str,
) -> HttpResponse:
    if form.is_valid():
        try:
            project = save(project=access.project, actor=request.user, **form.cleaned_data)
        except DomainError as error:
            form_add_error(form, error)
        else:
            messages.success(request, success)
            return _settings_response(request, replace(access, project=project), partial, saved=True)
    return _settings_response(request, access, partial, saved=False, **{form_name: form})


@login_required
@require_POST
def project_settings_general(request: AuthedHttpRequest, org_id: str, project_id: str) -> HttpResponse:
    access = access_project(request.user, org_id, project_id, min_org_role=Role.ADMIN)
    return _settings_save(
        request,
        access,
        form=ProjectForm(request.POST),
        form_name="general_form",
        partial="general-panel",
        save=project_update,
        success="Project name and description saved.",
    )


@login_required
@require_POST
def project_settings_limits(request: AuthedHttpRequest, org_id: str, project_id: str) -> HttpResponse:
    access = access_project(request.user, org_id, project_id, min_role=ProjectRole.ADMIN)
    return _settings_save(
        request,
        access,
        form=ProjectLimitsForm(request.POST),
        form_name="limits_form",
        partial="limits-panel",
        save=project_limits_update,
        success="Budget and rate limit settings saved.",
    )


@login_required
@require_POST
def project_archive_view(request: AuthedHttpRequest, org_id: str, project_id: str) -> HttpResponse:
    access = access_project(request.user, org_id, project_id, min_org_role=Role.ADMIN)
    project_archive(project=access.project, actor=request.user)
    messages.success(request, f"Project “{access.project.name}” archived. Its API keys stopped working.")
    url = reverse("projects:list", args=[org_id])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@login_required
@require_POST
def project_restore_view(request: AuthedHttpRequest, org_id: str, project_id: str) -> HttpResponse:
    access = access_project(request.user, org_id, project_id, min_org_role=Role.ADMIN)
    try:
        project_restore(project=access.project, actor=request.user)
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Project “{access.project.name}” restored. Its unrevoked API keys work again.")
    return redirect("projects:overview", org_id=org_id, project_id=project_id)
