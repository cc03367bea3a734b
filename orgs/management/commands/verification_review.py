"""Decide an organization's open verification request: the same service as the admin's actions."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from console.errors import DomainError
from console.models import User
from orgs.models import VerificationRequest, VerificationRequestStatus
from orgs.services import verification_approve, verification_reject


class Command(BaseCommand):
    help = 'Approve or reject an organization\'s pending verification: <org id> --approve | --reject --reason "..."'

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("org_id", help="The organization ID (org-…).")
        decision = parser.add_mutually_exclusive_group(required=True)
        decision.add_argument("--approve", action="store_true", help="Make the organization Enterprise Verified.")
        decision.add_argument("--reject", action="store_true", help="Reject; --reason is required.")
        parser.add_argument("--reason", default="", help="Why the request is rejected (sent to the organization).")
        parser.add_argument("--reviewer", default="", help="Email of the staff user recorded as reviewer.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["reject"] and not options["reason"].strip():
            raise CommandError('--reject needs --reason "..." (the organization is told why).')
        reviewer = None
        if options["reviewer"]:
            reviewer = User.objects.filter(email__iexact=options["reviewer"], is_staff=True).first()
            if reviewer is None:
                raise CommandError(f"No staff user with the email {options['reviewer']}.")
        request = (
            VerificationRequest.objects.select_related("organization")
            .filter(organization__public_id=options["org_id"], status=VerificationRequestStatus.PENDING)
            .first()
        )
        if request is None:
            raise CommandError(f"Organization {options['org_id']} has no pending verification request.")
        try:
            if options["approve"]:
                verification_approve(request=request, actor=reviewer)
                self.stdout.write(f"Approved: {request.organization} is now Enterprise Verified.")
            else:
                verification_reject(request=request, actor=reviewer, reason=options["reason"])
                self.stdout.write(f"Rejected: {request.organization} was emailed the reason.")
        except DomainError as error:
            raise CommandError(error.message) from error
