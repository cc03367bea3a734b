from __future__ import annotations

import factory

from console.tests.factories import UserFactory
from orgs.models import Membership, Organization, Role, VerificationStatus, VerificationTier

# Complete information and Enterprise Verified: the organization's admins may invite members.
READY_TO_INVITE = {
    "legal_address": "1 Main St, Berlin",
    "country": "DE",
    "tax_number": "DE123456789",
    "verification_tier": VerificationTier.ENTERPRISE,
    "verification_status": VerificationStatus.VERIFIED,
}


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    class Params:
        ready_to_invite = factory.Trait(**READY_TO_INVITE)

    name = factory.Sequence(lambda n: f"Org {n}")
    registered_email = factory.Sequence(lambda n: f"billing{n}@example.com")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    organization = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.MEMBER
