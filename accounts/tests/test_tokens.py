"""API tokens: shown once, stored as a hash, revocable, expiring."""

import hashlib
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.context import TenantContext
from accounts.models import ApiToken, AuditLog, Membership
from accounts.services import create_api_token, create_tenant

TOKENS = "/api/tokens"


def _client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.mark.django_db
def test_a_new_token_is_shown_once_and_works(owner):
    response = owner.client.post(TOKENS, {"name": "ci"}, format="json")

    assert response.status_code == 201
    plaintext = response.json()["token"]
    assert plaintext.startswith("dmt_")
    assert response.json()["prefix"] == plaintext[:10]
    assert _client(plaintext).get("/api/me").status_code == 200
    listed = owner.client.get(TOKENS).json()["results"]
    assert all("token" not in item for item in listed)
    assert "token" not in owner.client.get(f"{TOKENS}/{response.json()['id']}").json()


@pytest.mark.django_db
def test_only_the_sha256_of_a_token_is_stored(owner):
    plaintext = owner.client.post(TOKENS, {"name": "ci"}, format="json").json()["token"]

    stored = ApiToken.objects.get(name="ci")
    assert stored.token_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_apitoken")
        assert plaintext not in repr(cursor.fetchall())


@pytest.mark.django_db
def test_a_revoked_token_stops_working_at_once_and_stays_listed(owner):
    created = owner.client.post(TOKENS, {"name": "ci"}, format="json").json()

    response = owner.client.delete(f"{TOKENS}/{created['id']}")

    assert response.status_code == 204
    refused = _client(created["token"]).get("/api/me")
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_token"
    listed = owner.client.get(f"{TOKENS}/{created['id']}").json()
    assert listed["is_active"] is False
    assert listed["revoked_at"] is not None
    assert AuditLog.objects.filter(action=AuditLog.Action.TOKEN_REVOKED).count() == 1


@pytest.mark.django_db
def test_revoking_twice_changes_nothing(owner):
    created = owner.client.post(TOKENS, {"name": "ci"}, format="json").json()
    owner.client.delete(f"{TOKENS}/{created['id']}")
    first_revoked_at = ApiToken.objects.get(pk=created["id"]).revoked_at

    response = owner.client.delete(f"{TOKENS}/{created['id']}")

    assert response.status_code == 204
    assert ApiToken.objects.get(pk=created["id"]).revoked_at == first_revoked_at
    assert AuditLog.objects.filter(action=AuditLog.Action.TOKEN_REVOKED).count() == 1


@pytest.mark.django_db
def test_a_token_stops_working_when_it_expires(owner):
    expires_at = timezone.now() + timedelta(days=1)
    plaintext = owner.client.post(
        TOKENS, {"name": "short", "expires_at": expires_at.isoformat()}, format="json"
    ).json()["token"]

    with time_machine.travel(expires_at + timedelta(seconds=1)):
        response = _client(plaintext).get("/api/me")

    assert response.status_code == 401
    assert _client(plaintext).get("/api/me").status_code == 200


@pytest.mark.django_db
def test_an_expiry_in_the_past_is_refused(owner):
    past = (timezone.now() - timedelta(minutes=1)).isoformat()

    response = owner.client.post(TOKENS, {"name": "x", "expires_at": past}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "expired"


@pytest.mark.django_db
def test_using_a_token_records_when_it_was_last_used(owner):
    assert ApiToken.objects.get().last_used_at is None

    owner.client.get("/api/me")

    assert ApiToken.objects.get().last_used_at is not None


@pytest.mark.django_db
def test_a_token_acts_with_its_owners_role_and_only_while_they_are_a_member(owner, account_factory):
    member = account_factory(role=Membership.Role.MEMBER, tenant=owner.tenant)
    # The same person owns another organisation, with a token of its own there.
    own = create_tenant("Their own", member.user)
    _, own_token = create_api_token(
        TenantContext(membership=Membership.objects.get(user=member.user, tenant=own)), "own"
    )

    assert member.client.get("/api/me").json()["role"] == "member"
    assert _client(own_token).get("/api/me").json()["role"] == "owner"

    member.membership.delete()  # removed behind the API's back (the admin, a script)

    assert member.client.get("/api/me").status_code == 401
    assert _client(own_token).get("/api/me").json()["tenant"]["name"] == "Their own"


@pytest.mark.django_db
def test_a_member_sees_only_their_own_tokens_and_an_admin_sees_all(owner, account_factory):
    member = account_factory(role=Membership.Role.MEMBER, tenant=owner.tenant)
    admin = account_factory(role=Membership.Role.ADMIN, tenant=owner.tenant)

    member_view = {item["user"] for item in member.client.get(TOKENS).json()["results"]}
    admin_view = {item["user"] for item in admin.client.get(TOKENS).json()["results"]}

    assert member_view == {member.user.email}
    assert admin_view == {owner.user.email, member.user.email, admin.user.email}


@pytest.mark.django_db
def test_a_member_cannot_revoke_someone_elses_token(owner, account_factory):
    member = account_factory(role=Membership.Role.MEMBER, tenant=owner.tenant)
    owner_token_id = ApiToken.objects.get(user=owner.user).pk

    response = member.client.delete(f"{TOKENS}/{owner_token_id}")

    assert response.status_code == 404
    assert owner.client.get("/api/me").status_code == 200


@pytest.mark.django_db
def test_a_malformed_authorization_header_is_a_401(anonymous):
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer two parts")

    response = anonymous.get("/api/me")

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"
