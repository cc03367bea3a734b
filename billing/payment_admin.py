"""Staff tools for card payments: read-only payments and profiles, and refunds (full or partial)
through `card_payment_refund`; the ledger's refund row follows when Stripe's `charge.refunded` arrives."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from console.errors import DomainError, form_add_error

from .admin import ReadOnlyAdmin
from .forms import MoneyAmountField
from .models import CardPayment, PaymentProfile, PaymentStatus
from .money import CENT
from .services.refunds import card_payment_refund


class RefundForm(forms.Form):
    amount = MoneyAmountField(label="Refund amount", minimum=CENT,
                              help_text="At most what is left of the payment and what the balance holds.")


@admin.register(CardPayment)
class CardPaymentAdmin(ReadOnlyAdmin):
    list_display = ["id", "organization", "kind", "status", "amount", "currency", "card_label", "amount_refunded",
                    "payment_intent_id", "created_by", "created_at"]
    list_filter = ["status", "kind"]
    search_fields = ["payment_intent_id", "charge_id", "organization__public_id", "organization__name"]
    list_select_related = ["organization", "created_by"]
    actions = ["refund_payment"]

    @admin.action(description="Refund the selected card payment (asks for the amount)")
    def refund_payment(self, request: HttpRequest, queryset: Any) -> HttpResponse | None:
        if not request.user.is_staff or not request.user.has_perm("billing.change_cardpayment"):
            raise PermissionDenied
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one card payment to refund.", messages.ERROR)
            return None
        payment = queryset.get()
        form = RefundForm(request.POST if "apply" in request.POST else None,
                          initial={"amount": f"{payment.refundable:.2f}"})
        if payment.status != PaymentStatus.SUCCEEDED:
            self.message_user(request, "Only a credited card payment can be refunded.", messages.ERROR)
            return None
        if form.is_valid():
            try:
                refund_id = card_payment_refund(payment=payment, amount=form.cleaned_data["amount"],
                                                actor=request.user)  # type: ignore[arg-type]
            except DomainError as exc:
                form_add_error(form, exc)
            else:
                self.message_user(
                    request, f"Refund {refund_id} requested at Stripe; the ledger shows it when Stripe confirms it.",
                    messages.SUCCESS,
                )
                return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Refund a card payment",
            "form": form,
            "opts": self.model._meta,
            "payment": payment,
            "action": "refund_payment",
        }
        return TemplateResponse(request, "admin/billing/card_refund.html", context)


@admin.register(PaymentProfile)
class PaymentProfileAdmin(ReadOnlyAdmin):
    list_display = ["organization", "stripe_customer_id", "card_brand", "card_last4", "auto_recharge_enabled",
                    "auto_recharge_threshold", "auto_recharge_amount", "state", "consecutive_failures"]
    list_select_related = ["organization"]
