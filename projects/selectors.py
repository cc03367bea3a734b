"""Reads for project pages, the tier-limit counters and the member-removal preview."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet

from console.models import User
from orgs.limits import LimitDecision, limit_check
from orgs.models import Membership, Organization

from .models import APIKey, Project, ProjectMembership


def projects_for_organization(*, organization: Organization, user: User, archived: bool = False) -> QuerySet[Project]:
    """The org's projects (active, or archived ones), each with counts and whether `user` is in it."""
    return (
        Project.objects.filter(organization=organization, archived_at__isnull=not archived)
        .annotate(
            member_count=Count("memberships", distinct=True),
            is_member=Exists(ProjectMembership.objects.filter(project=OuterRef("pk"), user=user)),
        )
        .order_by("name", "pk")
    )


def active_projects_for_organization(*, organization: Organization) -> QuerySet[Project]:
    """Projects that can still be joined, e.g. for an invitation's pre-assigned projects."""
    return Project.objects.filter(organization=organization, archived_at__isnull=True).order_by("name", "pk")


def invitation_project_choices(*, organization: Organization) -> list[tuple[str, str]]:
    """orgs hook: the projects an invitation may pre-assign, as (public id, name)."""
    return list(active_projects_for_organization(organization=organization).values_list("public_id", "name"))


def active_project_count(*, organization: Organization) -> int:
    return Project.objects.filter(organization=organization, archived_at__isnull=True).count()


def limited_api_key_count(*, organization: Organization) -> int:
    """Keys that count against the org's tier limit (unrevoked, unexpired, not being rolled away)."""
    return APIKey.objects.filter(organization=organization).counted_for_limit().count()


def project_limit(*, organization: Organization) -> LimitDecision:
    """May one more active project be created (or restored)? Count under the org lock when it matters."""
    used = active_project_count(organization=organization)
    return limit_check(organization=organization, resource="projects", used=used)


def api_key_limit(*, organization: Organization) -> LimitDecision:
    used = limited_api_key_count(organization=organization)
    return limit_check(organization=organization, resource="api_keys", used=used)


def archived_project_count(*, organization: Organization) -> int:
    return Project.objects.filter(organization=organization, archived_at__isnull=False).count()


@dataclass(frozen=True)
class ProjectStats:
    member_count: int
    working_key_count: int  # unrevoked and unexpired


def project_stats(*, project: Project) -> ProjectStats:
    return ProjectStats(
        member_count=project.memberships.count(),
        working_key_count=project.api_keys.active().count(),
    )


def api_keys_for_project(*, project: Project) -> QuerySet[APIKey]:
    return APIKey.objects.filter(project=project).select_related("created_by", "revoked_by").order_by(
        "-created_at", "-pk"
    )


def project_members(*, project: Project) -> QuerySet[ProjectMembership]:
    """Members, admins first, each with the number of their keys still unrevoked in the project."""
    return (
        ProjectMembership.objects.filter(project=project)
        .select_related("user")
        .annotate(
            key_count=Count(
                "user__api_keys",
                filter=Q(user__api_keys__project=project, user__api_keys__revoked_at__isnull=True),
                distinct=True,
            )
        )
        .order_by("-role", "user__email")
    )


def addable_org_members(*, project: Project) -> QuerySet[User]:
    """Organization members who are not in the project yet (the "Add member" choices)."""
    return (
        User.objects.filter(memberships__organization_id=project.organization_id)
        .exclude(project_memberships__project=project)
        .order_by("email")
    )


def keys_revoked_by_demotion(*, membership: Membership) -> QuerySet[APIKey]:
    """An org admin's unrevoked keys in projects they are not a member of: demoting them to General
    Member takes away their access to those projects, so these keys would be revoked."""
    return (
        APIKey.objects.unrevoked()
        .filter(organization_id=membership.organization_id, created_by_id=membership.user_id)
        .exclude(project__memberships__user_id=membership.user_id)
        .select_related("project")
        .order_by("project__name", "project_id", "-created_at")
    )


def keys_revoked_by_removal(*, project: Project, user: User) -> list[APIKey]:
    """The keys that removing `user` from `project` would revoke, most recently used first."""
    return list(
        APIKey.objects.unrevoked().filter(project=project, created_by=user).order_by(
            F("last_used_at").desc(nulls_last=True), "-created_at"
        )
    )
