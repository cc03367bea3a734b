"""Organizations, members, invitations, verification, Contact Sales and the audit trail."""
