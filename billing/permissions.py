"""Invoices reached from a URL: org admins of the invoice's organization, and staff.

Everyone else gets 404, members included: an invoice's existence is not theirs to learn.
"""

from __future__ import annotations

from django.http import Http404

from console.models import User
from orgs.models import Membership

from .models import Invoice


def access_invoice(user: User, org_id: str, number: str) -> Invoice:
    if not user.is_authenticated:
        raise Http404("No such invoice.")
    invoice = Invoice.objects.select_related("organization").filter(
        organization__public_id=org_id, number=number
    ).first()
    if invoice is None:
        raise Http404("No such invoice.")
    if user.is_staff:
        return invoice
    is_admin = Membership.objects.admins().filter(user=user, organization=invoice.organization).exists()
    if not is_admin:
        raise Http404("No such invoice.")
    return invoice
