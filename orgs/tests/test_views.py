from __future__ import annotations

import pytest
from django.urls import reverse

from console.tests.factories import UserFactory
from orgs.models import AuditEvent, Membership, Organization, Role
from orgs.services import organization_create
from orgs.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def test_user_without_org_lands_on_create_page(client, user):
    client.force_login(user)
    response = client.get("/", follow=True)
    assert response.redirect_chain[-1][0] == reverse("orgs:create")
    assert "Create your organization" in response.content.decode()
    assert ">Cancel</a>" not in response.content.decode()  # nowhere to go back to


def test_a_member_of_an_organization_can_cancel_creating_another(client_as, org):
    page = client_as("member").get(reverse("orgs:create")).content.decode()
    assert f'href="{reverse("home")}">Cancel</a>' in page


def test_home_goes_to_last_used_org(client, user):
    older = organization_create(actor=user, name="Older", registered_email="a@x.test")
    newer = organization_create(actor=user, name="Newer", registered_email="a@x.test")
    client.force_login(user)
    assert client.get("/")["Location"] == reverse("orgs:overview", args=[newer.public_id])
    client.get(reverse("orgs:overview", args=[older.public_id]))
    Membership.objects.filter(organization=newer).update(last_used_at=None)
    assert client.get("/")["Location"] == reverse("orgs:overview", args=[older.public_id])


def test_anonymous_is_sent_to_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_create_organization_prefills_email_and_makes_admin(client, user):
    client.force_login(user)
    page = client.get(reverse("orgs:create")).content.decode()
    assert f'value="{user.email}"' in page
    response = client.post(reverse("orgs:create"), {"name": "Globex", "registered_email": "ops@globex.test"})
    org = Organization.objects.get(name="Globex")
    assert response["Location"] == reverse("orgs:overview", args=[org.public_id])
    assert Membership.objects.get(organization=org, user=user).role == Role.ADMIN


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"name": "", "registered_email": "a@b.test"}, "name", "This field is required."),
        ({"name": "   ", "registered_email": "a@b.test"}, "name", "This field is required."),
        ({"name": "x" * 300, "registered_email": "a@b.test"}, "name", "at most 100 characters"),
        ({"name": "Fine", "registered_email": "not-an-email"}, "registered_email", "Enter a valid email address."),
        ({"name": "Fine", "registered_email": ""}, "registered_email", "This field is required."),
    ],
)
def test_create_organization_bad_input_shows_error_and_creates_nothing(client, user, data, field, message):
    client.force_login(user)
    response = client.post(reverse("orgs:create"), data)
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert message.replace("'", "&#x27;") in response.content.decode()
    assert not Organization.objects.exists()


@pytest.mark.parametrize(
    ("role", "status"),
    [("anonymous", 302), ("outsider", 404), ("member", 200), ("admin", 200)],
)
@pytest.mark.parametrize("url_name", ["orgs:overview", "orgs:information", "orgs:verification", "orgs:members"])
def test_org_pages_role_matrix(client_as, org, role, status, url_name):
    response = client_as(role).get(reverse(url_name, args=[org.public_id]))
    assert response.status_code == status


@pytest.mark.parametrize(("role", "status"), [("outsider", 404), ("member", 403), ("admin", 200)])
def test_audit_log_is_for_admins_only(client_as, org, role, status):
    assert client_as(role).get(reverse("orgs:audit_log", args=[org.public_id])).status_code == status


def test_foreign_and_unknown_org_ids_are_404(client, user, org):
    client.force_login(user)
    assert client.get(reverse("orgs:overview", args=[org.public_id])).status_code == 404
    assert client.get(reverse("orgs:overview", args=["org-nope"])).status_code == 404


def test_verification_page_shows_id_tier_and_status(client_as, org):
    page = client_as("member").get(reverse("orgs:verification", args=[org.public_id])).content.decode()
    assert org.public_id in page
    assert "Default" in page
    assert "Not verified" in page
    assert "data-copy-target" in page


INFO = {
    "name": "Initech",
    "registered_email": "billing@initech.test",
    "legal_address": "4120 Freidrich Ln\nAustin TX",
    "country": "US",
    "tax_number": "US-12-3456789",
    "website": "https://initech.test",
}


def test_admin_edits_information(client_as, org):
    client = client_as("admin")
    url = reverse("orgs:information", args=[org.public_id])
    response = client.post(url, INFO)
    assert response.status_code == 302
    org.refresh_from_db()
    assert (org.name, org.country.code, org.tax_number) == ("Initech", "US", "US-12-3456789")
    assert org.information_complete
    page = client.get(url).content.decode()
    assert "Organization information saved." in page


def test_information_save_with_htmx_returns_the_panel_with_a_toast(client_as, org):
    client = client_as("admin")
    response = client.post(reverse("orgs:information", args=[org.public_id]), INFO, headers={"HX-Request": "true"})
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<div id="information-panel"')
    assert "<html" not in body
    assert "Organization information saved." in body
    assert 'hx-swap-oob="beforeend"' in body
    assert 'value="US-12-3456789"' in body  # the panel shows what was just saved


@pytest.mark.parametrize(
    ("override", "field", "message"),
    [
        ({"name": ""}, "name", "This field is required."),
        ({"name": "y" * 300}, "name", "at most 100 characters"),
        ({"registered_email": "nope@"}, "registered_email", "Enter a valid email address."),
        ({"country": "XX"}, "country", "Select a valid choice."),
        ({"website": "not a url"}, "website", "Enter a valid URL."),
        ({"tax_number": "12<script>"}, "tax_number", "Use letters, digits"),
    ],
)
@pytest.mark.parametrize("htmx", [False, True])
def test_information_bad_input_changes_nothing(client_as, org, override, field, message, htmx):
    client = client_as("admin")
    headers = {"HX-Request": "true"} if htmx else {}
    response = client.post(reverse("orgs:information", args=[org.public_id]), {**INFO, **override}, headers=headers)
    assert response.status_code == 200  # re-rendered with errors (htmx 2 swaps a 200)
    assert message in " ".join(response.context["form"].errors[field])
    before_name = org.name
    org.refresh_from_db()
    assert org.name == before_name
    assert not AuditEvent.objects.filter(action="organization.update").exists()


def test_member_reads_information_but_cannot_post(client_as, org):
    client = client_as("member")
    url = reverse("orgs:information", args=[org.public_id])
    page = client.get(url).content.decode()
    assert "Only organization administrators can change this information." in page
    assert "<form method=\"post\" action=\"" + url not in page
    assert client.post(url, INFO).status_code == 403
    org.refresh_from_db()
    assert org.name != "Initech"


def test_outsider_cannot_post_information(client_as, org):
    assert client_as("outsider").post(reverse("orgs:information", args=[org.public_id]), INFO).status_code == 404


def test_get_only_urls_refuse_post_with_405(client_as, org):
    client = client_as("admin")
    for name in ("orgs:overview", "orgs:audit_log", "orgs:members", "orgs:contact_sales_done"):
        assert client.post(reverse(name, args=[org.public_id])).status_code == 405


def test_logout_is_post_only(client, user):
    client.force_login(user)
    assert client.put(reverse("account_logout")).status_code == 405


def test_audit_log_lists_and_filters(client_as, org):
    client = client_as("admin")
    other_admin = MembershipFactory(organization=org, role=Role.ADMIN).user
    client.post(reverse("orgs:information", args=[org.public_id]), INFO)
    url = reverse("orgs:audit_log", args=[org.public_id])
    page = client.get(url).content.decode()
    assert "organization.update" in page
    assert "Initech" in page
    filtered = client.get(url, {"actor": other_admin.pk}).content.decode()
    assert "No events" in filtered
    partial = client.get(url, {"action": "organization.update"}, headers={"HX-Request": "true"}).content.decode()
    assert partial.lstrip().startswith('<div id="audit-table"')


def test_audit_log_shows_created_values_changes_and_removed_context_plainly(client_as, org):
    from datetime import UTC, datetime

    from orgs.audit import audit_record

    client = client_as("admin")
    actor = client.user
    when = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
    audit_record(actor=actor, organization=org, action="thing.create", after={"name": "Alpha", "expires_at": when})
    audit_record(actor=actor, organization=org, action="thing.update", before={"name": "Alpha"}, after={"name": "Beta"})
    audit_record(
        actor=actor, organization=org, action="thing.revoke",
        before={"email": "ana@example.com", "status": "pending"}, after={"status": "revoked"},
    )
    page = " ".join(client.get(reverse("orgs:audit_log", args=[org.public_id])).content.decode().split())
    assert '<span class="muted">name:</span> Alpha</div>' in page  # created: no "∅ →"
    assert '<span class="muted">expires_at:</span> 2026-03-04 05:06:07+00:00</div>' in page
    assert '<span class="muted">name:</span> Alpha → Beta</div>' in page
    assert '<span class="muted">email:</span> ana@example.com</div>' in page  # what was revoked
    assert '<span class="muted">status:</span> pending → revoked</div>' in page
    assert "∅" not in page
    audit_record(actor=actor, organization=org, action="thing.stop", before={"reason": ""}, after={"reason": "manual"})
    page = " ".join(client.get(reverse("orgs:audit_log", args=[org.public_id])).content.decode().split())
    assert '<span class="muted">reason:</span> ∅ → manual</div>' in page  # an empty value is not invisible


def test_audit_log_paginates(client_as, org):
    client = client_as("admin")
    admin = client.user
    for i in range(30):
        AuditEvent.objects.create(organization=org, actor=admin, actor_label=admin.email, action=f"test.{i}")
    page1 = client.get(reverse("orgs:audit_log", args=[org.public_id])).content.decode()
    assert "Page 1 of 2" in page1
    assert "Older →" in page1


def test_switcher_lists_every_org_of_the_user(client):
    user = UserFactory()
    a = organization_create(actor=user, name="Alpha Org", registered_email="a@x.test")
    organization_create(actor=user, name="Beta Org", registered_email="a@x.test")
    client.force_login(user)
    page = client.get(reverse("orgs:overview", args=[a.public_id])).content.decode()
    assert "Alpha Org" in page and "Beta Org" in page
    assert "+ Create organization" in page


def test_audit_events_from_a_request_carry_the_client_ip(client_as, org):
    client_as("admin").post(reverse("orgs:information", args=[org.public_id]), INFO, REMOTE_ADDR="198.51.100.23")
    assert AuditEvent.objects.get(action="organization.update").ip == "198.51.100.23"


@pytest.mark.parametrize(("role", "status"), [("outsider", 404), ("member", 403), ("admin", 302)])
def test_opening_the_invite_form_address_leads_back_to_the_form(client_as, org, role, status):
    response = client_as(role).get(reverse("orgs:invitation_create", args=[org.public_id]))
    assert response.status_code == status
    if status == 302:
        assert response["Location"] == reverse("orgs:members", args=[org.public_id]) + "#invite"
