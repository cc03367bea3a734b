"""Form fuzzing (hypothesis): every form view of the console gets random strings (any unicode,
control characters, 10,000-character values), numbers out of range and missing fields.

Never a 500; and when the view's form rejects the submission, no row of the database changed
(every table's content is fingerprinted before and after). Each example runs in a transaction
that is rolled back, so examples do not see each other. FUZZ_EXAMPLES sets the examples per view.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from django import forms
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction
from django.http import QueryDict
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.forms import (
    AddFundsForm,
    AutoRechargeForm,
    BalanceAlertForm,
    InvoiceRequestForm,
    LedgerFilterForm,
    MoneyAmountField,
    UsageRangeForm,
)
from billing.selectors.pages import invoiceable_months, invoiceable_topups
from orgs.forms import (
    AuditFilterForm,
    ContactSalesForm,
    InvitationFilterForm,
    OrganizationCreateForm,
    OrganizationInformationForm,
    RoleChangeForm,
    VerificationRequestForm,
)
from orgs.models import Organization
from orgs.views.members import _invitation_form
from projects.forms import (
    APIKeyCreateForm,
    APIKeyRollForm,
    ProjectForm,
    ProjectLimitsForm,
    ProjectMemberAddForm,
    ProjectMemberRoleForm,
)
from projects.models import Project
from projects.selectors import addable_org_members
from tests.gateway.figures import FIGURES

from .test_access_matrix import MATRIX, scoped_patterns, url_for
from .world import World, build_world

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))


def _project(world: World) -> Project:
    return Project.objects.get(public_id=world.home.kwargs["project_id"])


def _org(world: World) -> Organization:
    return world.home.organization


@dataclass(frozen=True)
class FormView:
    form: Callable[[World, Any, Any], forms.Form]  # the form as the view builds it
    method: str = "POST"
    reauthenticated: bool = False  # the view asks for the password again first (allauth)


class _ConfirmedCard(forms.Form):
    """What the card form's script posts (JSON endpoints): the amount and the SetupIntent Stripe.js
    confirmed. A fuzzed SetupIntent id is never one Stripe confirmed, so every submission is invalid
    and must change nothing."""

    amount = forms.CharField(required=False)
    setup_intent = forms.CharField(required=False)

    def clean(self) -> dict[str, Any]:
        raise forms.ValidationError("Not a SetupIntent that Stripe.js confirmed.")


FORM_VIEWS: dict[str, FormView] = {
    "orgs:create": FormView(lambda w, d, f: OrganizationCreateForm(d)),
    "orgs:information": FormView(lambda w, d, f: OrganizationInformationForm(d)),
    "orgs:verification": FormView(lambda w, d, f: VerificationRequestForm(d, f)),
    "orgs:invitation_create": FormView(lambda w, d, f: _invitation_form(_org(w), d)),
    "orgs:member_role": FormView(lambda w, d, f: RoleChangeForm(d), reauthenticated=True),
    "orgs:contact_sales": FormView(lambda w, d, f: ContactSalesForm(d)),
    "orgs:audit_log": FormView(lambda w, d, f: AuditFilterForm(d), method="GET"),
    "orgs:members": FormView(lambda w, d, f: InvitationFilterForm(d), method="GET"),
    "projects:create": FormView(lambda w, d, f: ProjectForm(d)),
    "projects:key_create": FormView(lambda w, d, f: APIKeyCreateForm(d)),
    "projects:key_roll": FormView(lambda w, d, f: APIKeyRollForm(d)),
    "projects:members": FormView(
        lambda w, d, f: ProjectMemberAddForm(d, users=addable_org_members(project=_project(w)))
    ),
    "projects:member_role": FormView(lambda w, d, f: ProjectMemberRoleForm(d)),
    "projects:settings_general": FormView(lambda w, d, f: ProjectForm(d)),
    "projects:settings_limits": FormView(lambda w, d, f: ProjectLimitsForm(d)),
    "billing:balance_alerts": FormView(lambda w, d, f: BalanceAlertForm(d)),
    "billing:invoice_request": FormView(
        lambda w, d, f: InvoiceRequestForm(
            d, topups=invoiceable_topups(organization=_org(w)), months=invoiceable_months(organization=_org(w))
        )
    ),
    "billing:overview": FormView(lambda w, d, f: LedgerFilterForm(d), method="GET"),
    "billing:add_funds": FormView(lambda w, d, f: AddFundsForm(d), method="GET", reauthenticated=True),
    "billing:add_funds_pay": FormView(lambda w, d, f: _ConfirmedCard(d), reauthenticated=True),
    "billing:auto_recharge": FormView(lambda w, d, f: AutoRechargeForm(d), reauthenticated=True),
    "billing:auto_recharge_card_confirm": FormView(lambda w, d, f: _ConfirmedCard(d), reauthenticated=True),
    "billing:ledger_csv": FormView(lambda w, d, f: LedgerFilterForm(d), method="GET"),
    "billing:org_usage": FormView(lambda w, d, f: UsageRangeForm(d), method="GET"),
    "billing:project_usage": FormView(lambda w, d, f: UsageRangeForm(d), method="GET"),
}
# POST views with no form: one button (revoke, archive, ...); the access matrix posts to them.
BUTTON_VIEWS = {
    "orgs:invitation_accept", "orgs:invitation_resend", "orgs:invitation_revoke", "orgs:member_remove",
    "projects:archive", "projects:restore", "projects:key_revoke", "projects:member_remove",
    "billing:auto_recharge_card_remove",
}

# --- values ----------------------------------------------------------------------------------

long_text = st.builds(lambda c, n: c * n, st.characters(), st.integers(10_000, 10_050))
control_text = st.text(st.characters(min_codepoint=0, max_codepoint=31), min_size=1, max_size=8)
odd_numbers = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.floats().map(repr),
    st.sampled_from(["-1", "0", "1e309", "NaN", "-Infinity", "0x1F", "١٢٣", "²", "9" * 400, "1_000", " 5 ",
                     "\uff15\uff10", "$1,0,0", "1,00.5"]),
)
nasty = st.one_of(st.text(max_size=60), control_text, long_text, odd_numbers, st.just(""))


def plausible(field: forms.Field) -> list[str]:
    """Values the field would accept, so the fuzzing also reaches the services behind valid forms."""
    if isinstance(field, forms.ChoiceField):
        return [str(value) for value, _label in field.choices if value not in ("", None)][:20] or [""]
    if isinstance(field, forms.ModelChoiceField):
        return [str(pk) for pk in field.queryset.values_list("pk", flat=True)[:5]] or [""]
    if isinstance(field, forms.EmailField):
        return ["ana@example.com", "billing@acme.test"]
    if isinstance(field, forms.IntegerField | forms.DecimalField):
        return ["1", "5", "100", "2.50"]
    if isinstance(field, MoneyAmountField):
        return ["5", "25.00", "$1,000", "2.50"]
    if isinstance(field, forms.DateField):
        return ["2031-01-01", "2020-01-01"]
    if isinstance(field, forms.BooleanField):
        return ["on"]
    if isinstance(field, forms.URLField):
        return ["https://example.com"]
    return ["Acme", "a b c"]


def value_for(field: forms.Field) -> st.SearchStrategy[Any]:
    one = st.one_of(nasty, st.sampled_from(plausible(field)))
    if isinstance(field, forms.MultipleChoiceField):
        return st.lists(one, max_size=3)
    return one


def submissions(fields: dict[str, forms.Field]) -> st.SearchStrategy[dict[str, Any]]:
    """Any subset of the form's fields (the others are missing), plus now and then an unknown one."""
    optional = {name: value_for(field) for name, field in fields.items() if not isinstance(field, forms.FileField)}
    optional["unexpected"] = nasty
    return st.fixed_dictionaries({}, optional=optional)


uploads = st.builds(
    # Any file name the browser could send ("/" is a path, which the client would not send as a name).
    lambda head, body, name: SimpleUploadedFile("f" + name.replace("/", "_"), head + body),
    st.sampled_from([b"", b"%PDF-1.7\n", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"MZ"]),
    st.binary(max_size=600),
    st.text(st.characters(blacklist_characters='\r\n"\\', blacklist_categories=("Cs",)), max_size=80),
)

# --- the database's content ------------------------------------------------------------------


def _tables() -> list[str]:
    names = []
    for model in apps.get_models(include_auto_created=True):
        table = model._meta.db_table
        if model._meta.managed and table != "django_session" and table not in names:
            names.append(table)
    return names


def fingerprint() -> dict[str, str]:
    """An md5 of every table's rows (not only their count: an UPDATE shows too)."""
    parts = [  # table names from our own models, quoted
        f"SELECT '{table}', md5(coalesce(string_agg(md5(t::text), ',' ORDER BY md5(t::text)), '')) FROM \"{table}\" t"  # noqa: S608
        for table in _tables()
    ]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts))
        return dict(cursor.fetchall())


# --- the test --------------------------------------------------------------------------------


def test_every_form_view_is_fuzzed():
    posting = {name for name, (_get, post) in MATRIX.items() if set(post) != {302, 405} and 405 not in post[2:]}
    posting |= {"orgs:create"}
    assert posting - set(FORM_VIEWS) - BUTTON_VIEWS == set(), "a POST view neither fuzzed nor listed as a button"
    assert set(FORM_VIEWS) - set(scoped_patterns()) - {"orgs:create"} == set()


@pytest.fixture
def world(reauthenticate, stripe_fake) -> World:
    world = build_world()
    client = world.client("admin")
    client.user = world.users["admin"]  # type: ignore[attr-defined]
    reauthenticate(client)
    return world


def _url(world: World, name: str) -> str:
    if name == "orgs:create":
        return reverse(name)
    return url_for(world, name, scoped_patterns()[name], org_kwargs=world.home.kwargs)


@contextmanager
def spy_form_errors() -> Iterator[list[str]]:
    """Every error a form is given while the block runs: Django's own validation and a service's
    refusal (DomainError) shown with console.errors.form_add_error both go through add_error."""
    seen: list[str] = []
    original = forms.BaseForm.add_error

    def add_error(form: forms.BaseForm, field: str | None, error: Any) -> None:
        seen.append(str(field))
        original(form, field, error)

    forms.BaseForm.add_error = add_error  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        forms.BaseForm.add_error = original  # type: ignore[method-assign]


fuzz_figures = FIGURES.setdefault(
    "form fuzz", {"form views": len(FORM_VIEWS), "submissions": 0, "rejected, tables compared": 0},
)


@pytest.mark.parametrize("name", sorted(FORM_VIEWS))
def test_fuzzed_submissions_never_500_and_a_rejected_one_changes_nothing(world: World, name: str):
    view = FORM_VIEWS[name]
    url = _url(world, name)
    client = world.client("admin")
    fields = view.form(world, None, None).fields
    has_file = any(isinstance(field, forms.FileField) for field in fields.values())

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large])
    @given(data=submissions(fields), upload=uploads if has_file else st.none())
    def submit(data: dict[str, Any], upload: SimpleUploadedFile | None) -> None:
        with transaction.atomic():
            before = fingerprint()
            payload = dict(data)
            files = {}
            if upload is not None:
                payload["document"] = upload
                upload.seek(0)
                files = {"document": SimpleUploadedFile(upload.name, upload.read())}
                upload.seek(0)
            query = QueryDict(mutable=True)
            for key, value in data.items():
                query.setlist(key, value if isinstance(value, list) else [value])
            valid = view.form(world, query, files).is_valid()  # as the view will judge it, before it acts
            with spy_form_errors() as refused:  # the view's own form, or a service's refusal shown on it
                response = client.get(url, data) if view.method == "GET" else client.post(url, payload)
            assert response.status_code < 500, (response.status_code, data)
            fuzz_figures["submissions"] += 1
            if view.method == "POST" and (not valid or refused):
                fuzz_figures["rejected, tables compared"] += 1
                after = fingerprint()
                changed = [table for table in before if before[table] != after[table]]
                assert changed == [], f"a rejected submission changed {changed}"
            transaction.set_rollback(True)

    submit()
