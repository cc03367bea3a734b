"""Organization pages, one module per area: `organizations` (the organization's own pages and
Contact Sales), `members` (members and invitations), `invitation_link` (following a link)."""
