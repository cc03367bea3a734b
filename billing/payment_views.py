"""Pages for card payments: Add funds, a payment's status (polled until the webhook lands),
auto-recharge and receipts. Org admins only; paying and changing auto-recharge re-ask the password."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from allauth.account.decorators import reauthentication_required
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from console.errors import DomainError, form_add_error
from console.http import AuthedHttpRequest
from orgs.models import Membership, Role
from orgs.permissions import access_organization

from .forms import AddFundsForm, AutoRechargeForm
from .models import PaymentStatus
from .permissions import access_card_payment
from .selectors.payments import payment_profile_for
from .services.auto_recharge import auto_recharge_card_remove, auto_recharge_card_save, auto_recharge_update
from .services.payments import card_setup_start, card_topup_pay, topup_amount_clean
from .services.receipts import receipt_filename, receipt_pdf
from .stripe_client import stripe_configured, stripe_csp_sources


def _admin(request: AuthedHttpRequest, org_id: str) -> Membership:
    membership = access_organization(request.user, org_id, min_role=Role.ADMIN)
    if not stripe_configured():
        raise Http404("Card payments are not configured.")
    return membership


def _with_stripe_js(response: HttpResponse) -> HttpResponse:
    """The card form's page: its CSP also admits Stripe.js (django-csp reads `_csp_update`)."""
    response._csp_update = stripe_csp_sources()  # type: ignore[attr-defined]
    return response


def _stripe_context() -> dict[str, Any]:
    return {"stripe_js_url": settings.STRIPE_JS_URL, "stripe_publishable_key": settings.STRIPE_PUBLISHABLE_KEY}


@login_required
@require_GET
def add_funds(request: AuthedHttpRequest, org_id: str) -> HttpResponse:
    """The amount form (a GET form); with an amount, the card step. The card step starts a
    SetupIntent for the card form, so it asks for the password first (and comes back here)."""
    membership = _admin(request, org_id)
    if "preset" in request.GET or "custom" in request.GET:
        return _add_funds_card_step(request, membership=membership)
    context = {"membership": membership, "org": membership.organization, "form": AddFundsForm(), "step": "amount"}
    return render(request, "billing/add_funds.html", context)


@reauthentication_required
def _add_funds_card_step(request: AuthedHttpRequest, *, membership: Membership) -> HttpResponse:
    organization = membership.organization
    form = AddFundsForm(request.GET)
    context: dict[str, Any] = {"membership": membership, "org": organization, "form": form, "step": "amount"}
    if form.is_valid():
        try:
            amount = topup_amount_clean(form.cleaned_data["amount"])
            setup_id, client_secret = card_setup_start(organization=organization, actor=request.user, off_session=False)
        except DomainError as exc:
            form_add_error(form, exc, fields={"invalid_amount": "custom", "amount_out_of_range": "custom"})
        else:
            context.update(step="card", amount=amount, client_secret=client_secret, setup_intent_id=setup_id,
                           **_stripe_context())
    return _with_stripe_js(render(request, "billing/add_funds.html", context))


@login_required
@require_POST
def add_funds_pay(request: AuthedHttpRequest, org_id: str) -> HttpResponse:
    """The card form's second half (JSON for the page's script): charge the confirmed card."""
    membership = _admin(request, org_id)
    return _add_funds_pay(request, membership=membership)


@reauthentication_required
def _add_funds_pay(request: AuthedHttpRequest, *, membership: Membership) -> JsonResponse:
    organization = membership.organization
    try:
        amount = topup_amount_clean(request.POST.get("amount", ""))
        result = card_topup_pay(organization=organization, actor=request.user, amount=amount,
                                setup_intent_id=request.POST.get("setup_intent", ""))
    except DomainError as exc:
        return JsonResponse({"error": exc.message, "code": exc.code})
    status_url = reverse("billing:payment_status", kwargs={"org_id": organization.public_id,
                                                           "payment_id": result.payment.pk})
    if result.payment.status == PaymentStatus.FAILED:
        return JsonResponse({"error": result.payment.failure_message, "redirect": status_url})
    return JsonResponse({"redirect": status_url, "requires_action": result.action_client_secret})


@login_required
@require_GET
def payment_status(request: AuthedHttpRequest, org_id: str, payment_id: int) -> HttpResponse:
    payment = access_card_payment(request.user, org_id, payment_id=payment_id)
    membership = access_organization(request.user, org_id, min_role=Role.ADMIN)
    context = {"membership": membership, "org": membership.organization, "payment": payment}
    template = "billing/payment_status.html#payment-status" if request.htmx else "billing/payment_status.html"
    return render(request, template, context)


@login_required
@require_GET
def receipt_download(request: AuthedHttpRequest, org_id: str, intent_id: str) -> HttpResponse:
    payment = access_card_payment(request.user, org_id, intent_id=intent_id)
    if payment.status != PaymentStatus.SUCCEEDED:
        raise Http404("No receipt for this payment.")
    return HttpResponse(receipt_pdf(payment), content_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{receipt_filename(payment)}"',
        "Cache-Control": "private, no-store",
    })


# --- auto-recharge ---------------------------------------------------------------------------------


def _auto_recharge_page(request: AuthedHttpRequest, membership: Membership, **extra: Any) -> HttpResponse:
    organization = membership.organization
    profile = payment_profile_for(organization_id=organization.pk)
    form = extra.pop("form", None) or AutoRechargeForm(initial={
        "enabled": profile.auto_recharge_enabled,
        "threshold": f"{profile.auto_recharge_threshold:.2f}",
        "amount": f"{profile.auto_recharge_amount:.2f}",
    })
    context = {"membership": membership, "org": organization, "profile": profile, "form": form,
               "daily_cap": settings.CONSOLE_AUTO_RECHARGE_DAILY_CAP, **extra}
    return _with_stripe_js(render(request, "billing/auto_recharge.html", context))


@login_required
@require_http_methods(["GET", "POST"])
def auto_recharge(request: AuthedHttpRequest, org_id: str) -> HttpResponse:
    membership = _admin(request, org_id)
    if request.method == "POST":
        return _auto_recharge_update(request, membership=membership)
    if request.GET.get("add_card"):
        return _auto_recharge_card(request, membership=membership)
    return _auto_recharge_page(request, membership)


@reauthentication_required
def _auto_recharge_update(request: AuthedHttpRequest, *, membership: Membership) -> HttpResponse:
    form = AutoRechargeForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            auto_recharge_update(organization=membership.organization, actor=request.user, enabled=data["enabled"],
                                 threshold=Decimal(data["threshold"]), amount=Decimal(data["amount"]))
        except DomainError as exc:
            form_add_error(form, exc)
        else:
            messages.success(request, "Auto-recharge settings saved.")
            return redirect("billing:auto_recharge", org_id=membership.organization.public_id)
    return _auto_recharge_page(request, membership, form=form)


@reauthentication_required
def _auto_recharge_card(request: AuthedHttpRequest, *, membership: Membership) -> HttpResponse:
    """Step one of saving a card (`?add_card=1`): a SetupIntent and the card form."""
    setup_id, client_secret = card_setup_start(organization=membership.organization, actor=request.user,
                                               off_session=True)
    return _auto_recharge_page(request, membership, card_step=True, client_secret=client_secret,
                               setup_intent_id=setup_id, **_stripe_context())


@login_required
@require_POST
def auto_recharge_card_confirm(request: AuthedHttpRequest, org_id: str) -> HttpResponse:
    membership = _admin(request, org_id)
    return _auto_recharge_card_confirm(request, membership=membership)


@reauthentication_required
def _auto_recharge_card_confirm(request: AuthedHttpRequest, *, membership: Membership) -> JsonResponse:
    try:
        profile = auto_recharge_card_save(organization=membership.organization, actor=request.user,
                                          setup_intent_id=request.POST.get("setup_intent", ""))
    except DomainError as exc:
        return JsonResponse({"error": exc.message, "code": exc.code})
    messages.success(request, f"Card saved: {profile.card_brand.title()} •••• {profile.card_last4}.")
    return JsonResponse({"redirect": reverse("billing:auto_recharge",
                                             kwargs={"org_id": membership.organization.public_id})})


@login_required
@require_POST
def auto_recharge_card_delete(request: AuthedHttpRequest, org_id: str) -> HttpResponse:
    membership = _admin(request, org_id)
    return _auto_recharge_card_delete(request, membership=membership)


@reauthentication_required
def _auto_recharge_card_delete(request: AuthedHttpRequest, *, membership: Membership) -> HttpResponse:
    auto_recharge_card_remove(organization=membership.organization, actor=request.user)
    messages.success(request, "Card removed. Auto-recharge is off.")
    return redirect("billing:auto_recharge", org_id=membership.organization.public_id)
