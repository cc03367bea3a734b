"""The projects app; it registers its handlers for orgs' extension points (orgs/hooks.py)."""

from __future__ import annotations

from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "projects"
    verbose_name = "Projects"

    def ready(self) -> None:
        # orgs cannot import projects; it calls these from its own services (see orgs/hooks.py).
        from orgs import hooks

        from . import selectors
        from .models import ProjectRole
        from .services import org_hooks

        hooks.register_member_removal(
            handler=org_hooks.organization_member_removed, impact=org_hooks.organization_member_removal_impact
        )
        hooks.register_member_demotion(
            handler=org_hooks.organization_member_demoted, impact=org_hooks.organization_member_demotion_impact
        )
        hooks.register_usage_counter("projects", selectors.active_project_count)
        hooks.register_usage_counter("api_keys", selectors.limited_api_key_count)
        hooks.register_invitation_accepted(org_hooks.invitation_project_grants_apply)
        hooks.register_invitation_project_choices(selectors.invitation_project_choices, roles=ProjectRole.choices)
