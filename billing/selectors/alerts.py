"""Reads for balance alerts and consumption notifications: settings and who is emailed."""

from __future__ import annotations

from orgs.models import Membership, Organization
from projects.models import Project, ProjectMembership

from ..models import BalanceAlert


def balance_alert_for(*, organization: Organization) -> BalanceAlert:
    """The organization's alert settings; an unsaved default row when it never changed them."""
    alert = BalanceAlert.objects.filter(organization=organization).first()
    return alert or BalanceAlert(organization=organization)


def balance_alert_recipients(*, organization: Organization, alert: BalanceAlert) -> list[str]:
    return [organization.registered_email, *alert.extra_recipients]


def consumption_recipients(*, project: Project) -> list[str]:
    """The project's admins, plus the org admins when the project asks for it (or when the project
    has no admin of its own: someone must hear that its calls are about to be denied)."""
    admins = list(
        ProjectMembership.objects.admins().filter(project=project)
        .order_by("user__email")
        .values_list("user__email", flat=True)
    )
    if project.notify_org_admins or not admins:
        admins += Membership.objects.admins().filter(organization_id=project.organization_id).order_by(
            "user__email"
        ).values_list("user__email", flat=True)
    return list(dict.fromkeys(admins))
