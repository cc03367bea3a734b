"""Project pages under /o/<org id>/projects/<project id>/."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "projects"

P = "o/<str:org_id>/projects/<str:project_id>/"

urlpatterns = [
    path("o/<str:org_id>/projects/", views.project_list, name="list"),
    path("o/<str:org_id>/projects/new/", views.project_create_view, name="create"),
    path(P, views.project_overview, name="overview"),
    path(P + "keys/", views.key_list, name="keys"),
    path(P + "keys/new/", views.key_create, name="key_create"),
    path(P + "keys/<str:key_id>/revoke/", views.key_revoke, name="key_revoke"),
    path(P + "keys/<str:key_id>/roll/", views.key_roll, name="key_roll"),
    path(P + "members/", views.member_list, name="members"),
    path(P + "members/<int:member_id>/role/", views.member_role, name="member_role"),
    path(P + "members/<int:member_id>/remove/", views.member_remove, name="member_remove"),
    path(P + "settings/", views.project_settings, name="settings"),
    path(P + "settings/general/", views.project_settings_general, name="settings_general"),
    path(P + "settings/limits/", views.project_settings_limits, name="settings_limits"),
    path(P + "archive/", views.project_archive_view, name="archive"),
    path(P + "restore/", views.project_restore_view, name="restore"),
]
