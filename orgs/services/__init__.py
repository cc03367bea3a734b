"""Every state change of organizations, members, invitations, verification and Contact Sales.

One module per concept; import from the module (`orgs.services.invitations`) or from here, which
re-exports the public names. The audit trail's writer is `orgs.audit`.
"""

from __future__ import annotations

from .contact_sales import contact_sales_request_create, contact_sales_request_update
from .invitations import (
    IssuedInvitation,
    invitation_accept,
    invitation_create,
    invitation_resend,
    invitation_revoke,
)
from .members import membership_remove, membership_role_change, membership_touch
from .organizations import (
    ORGANIZATION_INFO_FIELDS,
    ORGANIZATION_LIMIT_FIELDS,
    organization_create,
    organization_limits_update,
    organization_update,
)
from .verification import VERIFICATION_FIELDS, verification_approve, verification_reject, verification_submit

__all__ = [
    "ORGANIZATION_INFO_FIELDS",
    "ORGANIZATION_LIMIT_FIELDS",
    "VERIFICATION_FIELDS",
    "IssuedInvitation",
    "contact_sales_request_create",
    "contact_sales_request_update",
    "invitation_accept",
    "invitation_create",
    "invitation_resend",
    "invitation_revoke",
    "membership_remove",
    "membership_role_change",
    "membership_touch",
    "organization_create",
    "organization_limits_update",
    "organization_update",
    "verification_approve",
    "verification_reject",
    "verification_submit",
]
