"""Staff admin for users and the email outbox (which never shows a secret)."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.http import HttpRequest

from .models import OutboxEmail, User


@admin.register(User)
class UserAdmin(BaseUserAdmin[User]):
    ordering = ("email",)
    list_display = ("email", "name", "is_staff", "is_active", "date_joined", "last_login")
    search_fields = ("email", "name")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("name",)}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)

    def has_delete_permission(self, request: HttpRequest, obj: User | None = None) -> bool:
        # Deleting a user would cascade their memberships past the services' rules (the last admin,
        # the invitations they issued, their keys): staff deactivate (is_active) instead.
        return False


@admin.register(OutboxEmail)
class OutboxEmailAdmin(admin.ModelAdmin[OutboxEmail]):
    """Read-only: rows change only through the outbox services (`manage.py email_outbox_retry`)."""

    list_display = ("id", "template", "recipients", "organization_ref", "status", "attempts", "created_at", "sent_at")
    list_filter = ("status", "template")
    search_fields = ("unique_key", "to", "organization_ref")
    date_hierarchy = "created_at"
    # The context is left out: before an email is sent it may hold a secret link.
    fields = (
        "unique_key", "template", "to", "attachments", "organization_ref", "status", "attempts", "last_error",
        "next_attempt_at", "created_at", "sent_at",
    )
    readonly_fields = fields

    @admin.display(description="recipients")
    def recipients(self, obj: OutboxEmail) -> str:
        return ", ".join(obj.to)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: OutboxEmail | None = None) -> bool:
        return False
