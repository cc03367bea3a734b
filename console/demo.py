"""The demo organization that `make run` loads, so a newcomer sees a living console."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from allauth.account.models import EmailAddress
from django.db import transaction

from billing.demo import billing_demo_load
from console.models import User
from orgs.models import Membership, Organization, Role, VerificationStatus, VerificationTier
from orgs.services import organization_create, organization_update
from projects.models import APIKey, Project
from projects.services import api_key_create, api_key_revoke, project_create, project_limits_update

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-console-2026"  # noqa: S105 -- the local demo login, printed by `make run`
DEMO_ORG_NAME = "Acme Demo"
DEMO_PROJECT_NAME = "Demo project"
DEMO_KEY_NAME = "Demo key"


@dataclass(frozen=True)
class DemoResult:
    user: User
    organization: Organization
    created: bool
    project: Project
    # The demo key's plaintext when this run created it; None when a working one already exists
    # (its secret cannot be shown again: run with new_key=True to replace it).
    api_key: str | None = None


@transaction.atomic
def demo_load(*, email: str = DEMO_EMAIL, password: str = DEMO_PASSWORD, new_key: bool = False) -> DemoResult:
    """Create (or refresh) the demo admin, its organization, a project with a budget and an API key.

    Safe to run any number of times: a new key is made only when no working demo key is left, or
    when `new_key` asks to replace it.
    """
    user, _ = User.objects.get_or_create(email=email, defaults={"name": "Demo Admin"})
    user.set_password(password)
    user.save(update_fields=["password"])
    EmailAddress.objects.update_or_create(
        user=user, email=email, defaults={"verified": True, "primary": True}
    )
    membership = (
        Membership.objects.filter(user=user, role=Role.ADMIN, organization__name=DEMO_ORG_NAME)
        .select_related("organization")
        .first()
    )
    created = membership is None
    if membership is None:
        organization = organization_create(actor=user, name=DEMO_ORG_NAME, registered_email=email)
    else:
        organization = membership.organization
    organization = organization_update(
        organization=organization,
        actor=user,
        data={
            "legal_address": "1 Demo Street\n10115 Berlin",
            "country": "DE",
            "tax_number": "DE123456789",
            "website": "https://acme.example.com",
        },
    )
    # Verified, so inviting members works on `make run` without a staff review first. There is no
    # service for it on purpose: outside the demo, only a reviewed request verifies an organization.
    Organization.objects.filter(pk=organization.pk).update(
        verification_tier=VerificationTier.ENTERPRISE, verification_status=VerificationStatus.VERIFIED
    )
    organization.refresh_from_db()
    project = _demo_project(user=user, organization=organization)
    api_key = _demo_key(user=user, project=project, new_key=new_key)
    demo_key = APIKey.objects.filter(project=project, name=DEMO_KEY_NAME).active().order_by("-created_at").first()
    if demo_key is not None:
        billing_demo_load(organization=organization, key=demo_key)  # prices, a top-up, some usage
    return DemoResult(user=user, organization=organization, created=created, project=project, api_key=api_key)


def _demo_project(*, user: User, organization: Organization) -> Project:
    project = Project.objects.filter(organization=organization, name=DEMO_PROJECT_NAME, archived_at=None).first()
    if project is not None:
        return project
    project = project_create(
        organization=organization,
        actor=user,
        name=DEMO_PROJECT_NAME,
        description="A sample project with a budget, a TPM limit and an API key to try the gateway with.",
    )
    return project_limits_update(
        project=project,
        actor=user,
        monthly_budget=Decimal("100.00"),
        daily_budget=Decimal("10.00"),
        tpm_limit=100_000,
        monthly_notify_percents=[50, 80, 100],
        daily_notify_percents=[100],
        notify_org_admins=False,
    )


def _demo_key(*, user: User, project: Project, new_key: bool) -> str | None:
    working = list(
        APIKey.objects.filter(project=project, created_by=user, name=DEMO_KEY_NAME)
        .active()
        .select_related("project__organization")
    )
    if working and not new_key:
        return None
    for key in working:
        api_key_revoke(key=key, actor=user)
    return api_key_create(project=project, actor=user, name=DEMO_KEY_NAME).raw_key
