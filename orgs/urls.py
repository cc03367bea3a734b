from __future__ import annotations

from django.urls import path

from . import views

app_name = "orgs"

urlpatterns = [
    path("orgs/new/", views.organization_create_view, name="create"),
    path("o/<str:org_id>/", views.organization_overview, name="overview"),
    path("o/<str:org_id>/members/", views.members, name="members"),
    path("o/<str:org_id>/members/invite/", views.invitation_create_view, name="invitation_create"),
    path(
        "o/<str:org_id>/members/invitations/<int:invitation_id>/resend/",
        views.invitation_resend_view,
        name="invitation_resend",
    ),
    path(
        "o/<str:org_id>/members/invitations/<int:invitation_id>/revoke/",
        views.invitation_revoke_view,
        name="invitation_revoke",
    ),
    path("o/<str:org_id>/members/<int:membership_id>/role/", views.member_role_change, name="member_role"),
    path("o/<str:org_id>/members/<int:membership_id>/remove/", views.member_remove, name="member_remove"),
    path("o/<str:org_id>/contact-sales/", views.contact_sales, name="contact_sales"),
    path("o/<str:org_id>/contact-sales/sent/", views.contact_sales_done, name="contact_sales_done"),
    path("o/<str:org_id>/settings/information/", views.organization_information, name="information"),
    path("o/<str:org_id>/settings/verification/", views.organization_verification, name="verification"),
    path(
        "o/<str:org_id>/settings/verification/<int:request_id>/document/",
        views.verification_document,
        name="verification_document",
    ),
    path("o/<str:org_id>/settings/audit-log/", views.audit_log, name="audit_log"),
    # Invitation links are not organization-scoped: the token alone identifies the invitation.
    path("invite/", views.invitation_detail, name="invitation"),
    path("invite/accept/", views.invitation_accept_view, name="invitation_accept"),
    path("invite/<str:token>/", views.invitation_open, name="invitation_open"),
]
