from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from console.tests.factories import UserFactory
from orgs.tests.factories import OrganizationFactory
from projects.keys import api_key_authenticate, api_key_touch, generate_raw_key, is_well_formed, key_digest, key_hint
from projects.models import APIKey, Project


def make_key(**overrides):
    org = OrganizationFactory()
    project = Project.objects.create(organization=org, name="P")
    raw = generate_raw_key()
    key = APIKey.objects.create(
        organization=org, project=project, created_by=UserFactory(), name="k",
        digest=key_digest(raw), hint=key_hint(raw), **overrides,
    )
    return raw, key


def test_generated_keys_are_well_formed_and_distinct():
    keys = {generate_raw_key() for _ in range(50)}
    assert len(keys) == 50
    assert all(k.startswith("sk-") and is_well_formed(k) for k in keys)


MUTATIONS = {
    "typo-in-checksum": lambda k: k[:-1] + ("0" if k[-1] != "0" else "1"),
    "truncated": lambda k: k[:-2],
    "wrong-prefix": lambda k: "pk-" + k[3:],
    "empty": lambda k: "",
}


@pytest.mark.django_db
@pytest.mark.parametrize("mutate", MUTATIONS.values(), ids=MUTATIONS.keys())
def test_malformed_keys_are_refused_without_a_query(mutate, django_assert_num_queries):
    raw = mutate(generate_raw_key())
    with django_assert_num_queries(0):
        result = api_key_authenticate(raw)
    assert (result.key, result.error) == (None, "malformed")


@pytest.mark.django_db
def test_valid_key_authenticates_with_one_query(django_assert_num_queries):
    raw, key = make_key()
    with django_assert_num_queries(1):
        result = api_key_authenticate(raw)
        assert result.error is None and result.key == key
        assert result.key.project.organization_id == key.organization_id


@pytest.mark.django_db
def test_unknown_revoked_expired_archived():
    assert api_key_authenticate(generate_raw_key()).error == "unknown"
    raw, key = make_key(revoked_at=timezone.now())
    assert api_key_authenticate(raw).error == "revoked"
    raw, key = make_key(expires_at=timezone.now() - timedelta(seconds=1))
    assert api_key_authenticate(raw).error == "expired"
    raw, key = make_key()
    Project.objects.filter(pk=key.project_id).update(archived_at=timezone.now())
    assert api_key_authenticate(raw).error == "project_archived"


@pytest.mark.django_db
def test_touch_writes_at_most_once_a_minute(django_assert_num_queries):
    _raw, key = make_key()
    with django_assert_num_queries(1):
        api_key_touch(key)
    first = APIKey.objects.get(pk=key.pk).last_used_at
    assert first is not None
    with django_assert_num_queries(0):
        api_key_touch(key)
    stale = APIKey.objects.get(pk=key.pk)  # another process's copy, also fresh in the database
    stale.last_used_at = None
    api_key_touch(stale)
    assert APIKey.objects.get(pk=key.pk).last_used_at == first
