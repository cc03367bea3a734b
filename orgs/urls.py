"""Organization-scoped pages under /o/<org id>/, and the invitation links under /invite/."""

from __future__ import annotations

from django.urls import path

from .views import invitation_link, members, organizations

app_name = "orgs"

urlpatterns = [
    path("orgs/new/", organizations.organization_create_view, name="create"),
    path("o/<str:org_id>/", organizations.organization_overview, name="overview"),
    path("o/<str:org_id>/members/", members.members, name="members"),
    path("o/<str:org_id>/members/invite/", members.invitation_create_view, name="invitation_create"),
    path(
        "o/<str:org_id>/members/invitations/<int:invitation_id>/resend/",
        members.invitation_resend_view,
        name="invitation_resend",
    ),
    path(
        "o/<str:org_id>/members/invitations/<int:invitation_id>/revoke/",
        members.invitation_revoke_view,
        name="invitation_revoke",
    ),
    path("o/<str:org_id>/members/<int:membership_id>/role/", members.member_role_change, name="member_role"),
    path("o/<str:org_id>/members/<int:membership_id>/remove/", members.member_remove, name="member_remove"),
    path("o/<str:org_id>/contact-sales/", organizations.contact_sales, name="contact_sales"),
    path("o/<str:org_id>/contact-sales/sent/", organizations.contact_sales_done, name="contact_sales_done"),
    path("o/<str:org_id>/settings/information/", organizations.organization_information, name="information"),
    path("o/<str:org_id>/settings/verification/", organizations.organization_verification, name="verification"),
    path(
        "o/<str:org_id>/settings/verification/<int:request_id>/document/",
        organizations.verification_document,
        name="verification_document",
    ),
    path("o/<str:org_id>/settings/audit-log/", organizations.audit_log, name="audit_log"),
    # Invitation links are not organization-scoped: the token alone identifies the invitation.
    path("invite/", invitation_link.invitation_detail, name="invitation"),
    path("invite/accept/", invitation_link.invitation_accept_view, name="invitation_accept"),
    path("invite/<str:token>/", invitation_link.invitation_open, name="invitation_open"),
]
