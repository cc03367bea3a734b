from __future__ import annotations

from django.urls import path

from . import views

app_name = "projects"

urlpatterns = [
    path("o/<str:org_id>/projects/", views.project_list, name="list"),
]
