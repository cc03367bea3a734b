"""Contact Sales: a member asks for higher limits; staff follow the request up in the admin."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from console.errors import DomainError, Forbidden
from console.models import User
from console.services import absolute_url, email_enqueue

from ..audit import audit_record, snapshot
from ..models import ContactSalesRequest, Organization, SalesNeed
from ..permissions import require_member, staff_may

CONTACT_SALES_STAFF_FIELDS = ("handled_at", "staff_notes")


def _email_sales(*, request: ContactSalesRequest, organization: Organization) -> None:
    email_enqueue(
        to=[settings.CONSOLE_SALES_EMAIL],
        template="contact_sales",
        context={
            "need": request.get_need_display(),
            "name": request.name,
            "email": request.email,
            "company": request.company,
            "message": request.message,
            "org_name": organization.name,
            "org_id": organization.public_id,
            "org_tier": organization.get_verification_tier_display(),
            "admin_url": absolute_url("admin:orgs_contactsalesrequest_change", object_id=request.pk),
            "reply_to": [request.email],
        },
        unique_key=f"contact_sales:{request.pk}",
        organization_ref=organization.public_id,
    )


@transaction.atomic
def contact_sales_request_create(
    *, organization: Organization, actor: User, data: dict[str, Any]
) -> ContactSalesRequest:
    """Store the request (audited) and email it to sales; at most CONSOLE_CONTACT_SALES_PER_HOUR per user."""
    require_member(actor, organization.pk)
    # The user's row is the lock that makes "5 an hour" exact under concurrent posts.
    User.objects.select_for_update().filter(pk=actor.pk).first()
    since = timezone.now() - timedelta(hours=1)
    limit = settings.CONSOLE_CONTACT_SALES_PER_HOUR
    if ContactSalesRequest.objects.filter(user=actor, created_at__gte=since).count() >= limit:
        raise DomainError(
            f"You have sent {limit} requests in the last hour. Please wait a little before sending another.",
            code="rate_limited",
        )
    if data.get("need") not in SalesNeed.values:
        raise DomainError("Choose what you need.", code="invalid_need", field="need")
    request = ContactSalesRequest.objects.create(
        organization=organization,
        user=actor,
        name=data["name"].strip(),
        email=data["email"].strip(),
        company=data["company"].strip(),
        need=data["need"],
        message=data["message"].strip(),
    )
    audit_record(
        actor=actor,
        organization=organization,
        action="contact_sales.request",
        target=request,
        after={"need": request.get_need_display(), "company": request.company, "email": request.email},
    )
    _email_sales(request=request, organization=organization)
    return request


@transaction.atomic
def contact_sales_request_update(
    *, request: ContactSalesRequest, actor: User, handled_at: datetime | None, staff_notes: str
) -> ContactSalesRequest:
    """Staff follow a request up (handled, notes); audited with the changed fields only."""
    if not staff_may(actor, "orgs.change_contactsalesrequest"):
        raise Forbidden("Only platform staff follow Contact Sales requests up.", code="not_staff")
    request = ContactSalesRequest.objects.select_for_update(of=("self",)).select_related("organization").get(
        pk=request.pk
    )
    before = snapshot(request, CONTACT_SALES_STAFF_FIELDS)
    request.handled_at = handled_at
    request.staff_notes = staff_notes.strip()
    after = snapshot(request, CONTACT_SALES_STAFF_FIELDS)
    changed = [name for name in CONTACT_SALES_STAFF_FIELDS if before[name] != after[name]]
    if changed:
        request.save(update_fields=changed)
        audit_record(
            actor=actor,
            organization=request.organization,
            action="contact_sales.update",
            target=request,
            before={name: before[name] for name in changed},
            after={name: after[name] for name in changed},
        )
    return request
