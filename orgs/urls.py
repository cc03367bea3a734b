from __future__ import annotations

from django.urls import path

from . import views

app_name = "orgs"

urlpatterns = [
    path("orgs/new/", views.organization_create_view, name="create"),
    path("o/<str:org_id>/", views.organization_overview, name="overview"),
    path("o/<str:org_id>/members/", views.members_placeholder, name="members"),
    path("o/<str:org_id>/contact-sales/", views.contact_sales_placeholder, name="contact_sales"),
    path("o/<str:org_id>/settings/information/", views.organization_information, name="information"),
    path("o/<str:org_id>/settings/verification/", views.organization_verification, name="verification"),
    path("o/<str:org_id>/settings/audit-log/", views.audit_log, name="audit_log"),
]
