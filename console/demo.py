"""The demo organization that `make run` loads, so a newcomer sees a living console."""

from __future__ import annotations

from dataclasses import dataclass

from allauth.account.models import EmailAddress
from django.db import transaction

from billing.demo import billing_demo_load
from console.models import User
from orgs.models import Membership, Organization, Role
from orgs.services import organization_create

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-console-2026"  # noqa: S105 -- the local demo login, printed by `make run`
DEMO_ORG_NAME = "Acme Demo"


@dataclass(frozen=True)
class DemoResult:
    user: User
    organization: Organization
    created: bool
    # The demo key's plaintext when this run created it; None when a working one already exists.
    api_key: str | None = None


@transaction.atomic
def demo_load(*, email: str = DEMO_EMAIL, password: str = DEMO_PASSWORD) -> DemoResult:
    """Create (or refresh) the demo admin and its organization. Safe to run any number of times."""
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
    Organization.objects.filter(pk=organization.pk).update(
        legal_address="1 Demo Street\n10115 Berlin",
        country="DE",
        tax_number="DE123456789",
        website="https://acme.example.com",
    )
    organization.refresh_from_db()
    billing = billing_demo_load(organization=organization, user=user)  # prices, a top-up, usage
    return DemoResult(user=user, organization=organization, created=created, api_key=billing.raw_key)
