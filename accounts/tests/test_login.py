"""Portal sessions: log in by e-mail and password, CSRF on writes, log out."""

import pytest
from rest_framework.test import APIClient

from accounts.models import AuditLog
from accounts.tests.factories import PASSWORD

LOGIN = "/api/auth/login"


@pytest.mark.django_db
def test_logging_in_starts_a_session_that_api_calls_accept(owner):
    client = APIClient()

    response = client.post(
        LOGIN, {"email": owner.user.email.upper(), "password": PASSWORD}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["role"] == "owner"
    me = client.get("/api/me")
    assert me.status_code == 200
    assert me.json()["tenant"]["id"] == owner.tenant.id
    assert AuditLog.objects.filter(action=AuditLog.Action.LOGIN, actor=owner.user).exists()


@pytest.mark.django_db
def test_a_wrong_password_is_refused_and_audited(owner):
    response = APIClient().post(
        LOGIN, {"email": owner.user.email, "password": "wrong password"}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_credentials"
    failed = AuditLog.objects.get(action=AuditLog.Action.LOGIN_FAILED)
    assert failed.actor_email == owner.user.email
    assert failed.ip == "127.0.0.1"


@pytest.mark.django_db
def test_session_writes_need_the_csrf_token(owner):
    client = APIClient(enforce_csrf_checks=True)
    client.post(LOGIN, {"email": owner.user.email, "password": PASSWORD}, format="json")

    without = client.post("/api/tokens", {"name": "x"}, format="json")
    csrf = client.cookies["csrftoken"].value
    with_token = client.post("/api/tokens", {"name": "x"}, format="json", HTTP_X_CSRFTOKEN=csrf)

    assert without.status_code == 403
    assert without.json()["code"] == "permission_denied"
    assert with_token.status_code == 201


@pytest.mark.django_db
def test_logging_out_ends_the_session(owner):
    client = APIClient()
    client.post(LOGIN, {"email": owner.user.email, "password": PASSWORD}, format="json")

    response = client.post("/api/auth/logout")

    assert response.status_code == 204
    assert client.get("/api/me").status_code == 401


@pytest.mark.django_db
def test_login_is_throttled_per_address(owner):
    client = APIClient()
    statuses = [
        client.post(LOGIN, {"email": owner.user.email, "password": "nope"}, format="json")
        for _ in range(11)
    ]

    assert [response.status_code for response in statuses[:10]] == [400] * 10
    assert statuses[10].status_code == 429
    assert statuses[10].json()["code"] == "throttled"
    assert int(statuses[10]["Retry-After"]) > 0
