"""Every state change of projects, project members and API keys, one module per concept.

`projects` (the project itself, budgets and limits), `members`, `api_keys`, and `org_hooks` (what
this app does inside orgs' transactions). Import from the module or from here.
"""

from __future__ import annotations

from .api_keys import CreatedKey, api_key_create, api_key_revoke, api_key_roll
from .members import project_member_add, project_member_change_role, project_member_remove
from .projects import project_archive, project_create, project_limits_update, project_restore, project_update

__all__ = [
    "CreatedKey",
    "api_key_create",
    "api_key_revoke",
    "api_key_roll",
    "project_archive",
    "project_create",
    "project_limits_update",
    "project_member_add",
    "project_member_change_role",
    "project_member_remove",
    "project_restore",
    "project_update",
]
