"""Staff views of projects, project members and API keys.

Read-only: budgets, members and keys change through the audited services, which the console's
pages call. The one staff action, revoking keys, goes through `api_key_revoke` with the staff user
as the actor, so the organization's audit log shows who did it.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest

from console.models import User

from .models import APIKey, APIKeyQuerySet, Project, ProjectMembership
from .services import api_key_revoke


class ReadOnlyMixin:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ProjectMembershipInline(ReadOnlyMixin, admin.TabularInline[ProjectMembership, Project]):
    model = ProjectMembership
    fields = ("user", "role", "created_at")
    readonly_fields = fields
    extra = 0


@admin.register(Project)
class ProjectAdmin(ReadOnlyMixin, admin.ModelAdmin[Project]):
    list_display = (
        "name", "organization", "archived", "monthly_budget", "daily_budget", "tpm_limit", "rpm_limit", "created_at",
    )
    list_filter = (("archived_at", admin.EmptyFieldListFilter),)
    search_fields = ("name", "public_id", "organization__name", "organization__public_id")
    list_select_related = ("organization",)
    fields = (
        "public_id", "organization", "name", "description", "archived_at", "archived_by",
        "monthly_budget", "daily_budget", "tpm_limit", "rpm_limit", "monthly_notify_percents", "daily_notify_percents",
        "notify_org_admins", "created_by", "created_at", "updated_at",
    )
    readonly_fields = fields
    inlines = [ProjectMembershipInline]

    @admin.display(description="Archived", boolean=True, ordering="archived_at")
    def archived(self, obj: Project) -> bool:
        return obj.is_archived


@admin.register(ProjectMembership)
class ProjectMembershipAdmin(ReadOnlyMixin, admin.ModelAdmin[ProjectMembership]):
    list_display = ("user", "project", "organization", "role", "created_at")
    list_filter = ("role",)
    search_fields = ("user__email", "project__name", "project__public_id", "project__organization__name")
    list_select_related = ("user", "project__organization")
    fields = ("project", "user", "role", "created_at")
    readonly_fields = fields

    @admin.display(description="Organization", ordering="project__organization__name")
    def organization(self, obj: ProjectMembership) -> str:
        return str(obj.project.organization)


@admin.register(APIKey)
class APIKeyAdmin(admin.ModelAdmin[APIKey]):
    list_display = ("name", "hint", "project", "owner", "status", "last_used_at", "created_at")
    list_filter = ("revoked_reason", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "hint", "public_id", "project__name", "project__public_id", "created_by__email")
    list_select_related = ("project", "created_by")
    # Never the digest: with it, a leaked admin page would let anyone test guessed keys offline.
    fields = (
        "public_id", "name", "hint", "organization", "project", "created_by", "created_at", "last_used_at",
        "expires_at", "status", "revoked_at", "revoked_by", "revoked_reason", "replaced_by",
    )
    readonly_fields = fields
    actions = ["revoke_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: APIKey | None = None) -> bool:
        # A key's page is read-only (obj given); the changelist keeps "change" for the revoke action.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: APIKey | None = None) -> bool:
        return False

    @admin.display(description="Owner", ordering="created_by__email")
    def owner(self, obj: APIKey) -> str:
        return obj.created_by.email

    @admin.display(description="Status")
    def status(self, obj: APIKey) -> str:
        return obj.status_label

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_selected(self, request: HttpRequest, queryset: APIKeyQuerySet) -> None:
        actor: User = request.user  # type: ignore[assignment]
        revoked = 0
        for key in queryset.select_related("project").unrevoked():
            api_key_revoke(key=key, actor=actor)
            revoked += 1
        skipped = queryset.count() - revoked
        note = f" {skipped} already revoked: left as they were." if skipped else ""
        self.message_user(request, f"Revoked {revoked} key(s); they stop working at once.{note}", messages.SUCCESS)
