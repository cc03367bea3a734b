"""One organization with a member of every role and one object of every kind a URL can name,
plus another organization whose admin is the outsider. Shared by the access matrix and the form
fuzzing: both walk the URLconf and fill each pattern's ids from here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.core.files.base import ContentFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from billing.models import Invoice, InvoiceKind, LedgerKind
from billing.payment_models import CardPayment, PaymentKind, PaymentStatus
from billing.services.invoices import invoice_request_create
from billing.services.ledger import ledger_post
from billing.tests.factories import make_api_key
from console.models import User
from console.tests.factories import UserFactory
from orgs.models import Invitation, Membership, Organization, Role, VerificationRequest
from orgs.services import invitation_create
from orgs.tests.factories import MembershipFactory, OrganizationFactory
from projects.models import ProjectMembership, ProjectRole
from projects.tests.factories import ProjectFactory

# Who tries every URL. The outsider is an admin of another organization.
ACTORS = ("anonymous", "member", "project_member", "project_admin", "admin", "staff")

DETAILS = {"billing_name": "Acme GmbH", "billing_address": "1 Main St", "billing_country": "Germany",
           "billing_tax_number": "DE1", "billing_email": "ap@acme.test"}


@dataclass
class Org:
    organization: Organization
    admin: User
    kwargs: dict[str, Any] = field(default_factory=dict)  # a real value for every URL kwarg


@dataclass
class World:
    home: Org
    other: Org  # the outsider's organization, with objects of its own
    users: dict[str, User | None]
    invitation_token: str
    clients: dict[str, Client] = field(default_factory=dict)

    def client(self, actor: str) -> Client:
        if actor not in self.clients:
            client = Client(raise_request_exception=False)
            user = self.users[actor] if actor != "outsider" else self.other.admin
            if user is not None:
                client.force_login(user)
            self.clients[actor] = client
        return self.clients[actor]


def _objects(organization: Organization, admin: User, key_owner: User) -> dict[str, Any]:
    project = ProjectFactory(organization=organization, name=f"{organization.name} API")
    ProjectMembership.objects.create(project=project, user=key_owner, role=ProjectRole.ADMIN)
    _raw, key = make_api_key(project=project, created_by=key_owner)
    bystander = MembershipFactory(organization=organization, role=Role.MEMBER)
    project_bystander = ProjectMembership.objects.create(project=project, user=bystander.user, role=ProjectRole.MEMBER)
    invitation = Invitation.objects.create(
        organization=organization, email=f"pending@{organization.public_id}.test", role=Role.MEMBER,
        digest=f"d-{organization.public_id}", hint="inv_…0000", valid_days=7, invited_by=admin,
        sent_at=timezone.now(), expires_at=timezone.now() + timezone.timedelta(days=7),
    )
    verification = VerificationRequest(
        organization=organization, legal_name="Acme GmbH", registration_number="HRB 1", country="DE",
        address="1 Main St", contact_name="Ana", contact_email="ana@acme.test", submitted_by=admin,
        document_name="certificate.pdf", document_content_type="application/pdf", document_size=9,
    )
    verification.document.save("certificate.pdf", ContentFile(b"%PDF-1.4\n"), save=False)
    verification.save()
    entry = ledger_post(organization=organization, kind=LedgerKind.TOPUP, amount=Decimal("25.00"),
                        reference=f"matrix-{organization.public_id}", actor=None).entry
    request = invoice_request_create(organization=organization, actor=admin, kind=InvoiceKind.TOPUP,
                                     ledger_entry=entry, details=DETAILS)
    number = f"INV-{organization.pk}-0001"
    Invoice.objects.create(request=request, organization=organization, number=number, year=2026,
                           sequence=organization.pk, issued_at=datetime(2026, 1, 5, tzinfo=UTC), currency="USD",
                           total=Decimal("25.00"), pdf=b"%PDF-1.4 invoice")
    payment = CardPayment.objects.create(
        organization=organization, kind=PaymentKind.MANUAL, status=PaymentStatus.SUCCEEDED, amount=Decimal("10.00"),
        currency="USD", payment_intent_id=f"pi_matrix_{organization.pk}", card_brand="visa", card_last4="4242",
        created_by=admin,
    )
    return {
        "payment_id": payment.pk,
        "intent_id": payment.payment_intent_id,
        "org_id": organization.public_id,
        "project_id": project.public_id,
        "key_id": key.public_id,
        "member_id": project_bystander.pk,
        "membership_id": bystander.pk,
        "invitation_id": invitation.pk,
        "request_id": verification.pk,
        "number": number,
    }


def build_world() -> World:
    home_org = OrganizationFactory(name="Acme", ready_to_invite=True)
    admin = MembershipFactory(organization=home_org, role=Role.ADMIN).user
    member = MembershipFactory(organization=home_org, role=Role.MEMBER).user
    project_member = MembershipFactory(organization=home_org, role=Role.MEMBER).user
    project_admin = MembershipFactory(organization=home_org, role=Role.MEMBER).user
    staff = UserFactory(is_staff=True, is_superuser=True)
    home = Org(home_org, admin)
    home.kwargs = _objects(home_org, admin, key_owner=project_admin)
    project = home_org.projects.get()
    ProjectMembership.objects.create(project=project, user=project_member, role=ProjectRole.MEMBER)

    other_org = OrganizationFactory(name="Globex", ready_to_invite=True)
    outsider = MembershipFactory(organization=other_org, role=Role.ADMIN).user
    other = Org(other_org, outsider)
    other.kwargs = _objects(other_org, outsider, key_owner=outsider)

    issued = invitation_create(organization=home_org, actor=admin, email="invitee@example.com", role=Role.MEMBER)
    users: dict[str, User | None] = {
        "anonymous": None, "member": member, "project_member": project_member, "project_admin": project_admin,
        "admin": admin, "staff": staff,
    }
    assert Membership.objects.filter(user=staff).count() == 0  # staff reach orgs through the admin only
    return World(home=home, other=other, users=users, invitation_token=issued.token)


def url_patterns() -> list[tuple[str, URLPattern, str]]:
    """(name, pattern, route) for every pattern of the project's URLconf (not allauth's or the admin's);
    each must have a name."""
    found: list[tuple[str, URLPattern, str]] = []

    def walk(patterns: list[Any], prefix: str, namespace: str) -> None:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                route = prefix + str(entry.pattern)
                if route.startswith(("accounts/", "admin/")):
                    continue
                ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
                walk(entry.url_patterns, route, ns)
            elif isinstance(entry, URLPattern):
                # The matrix keys its rows by name: a pattern without one would slip past it.
                assert entry.name, f"URL pattern {prefix}{entry.pattern} has no name: name it for the access matrix"
                found.append((namespace + entry.name, entry, prefix + str(entry.pattern)))

    walk(get_resolver().url_patterns, "", "")
    return found
