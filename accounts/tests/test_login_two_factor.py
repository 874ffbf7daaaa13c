"""POST /api/auth/login of an account with two-factor authentication needs `otp`."""

import pytest
from rest_framework.test import APIClient

from accounts.models import AuditLog
from accounts.tests.factories import PASSWORD
from accounts.tests.two_factor import enable_two_factor, totp_code

LOGIN = "/api/auth/login"

pytestmark = pytest.mark.django_db


def _login(client: APIClient, account, **extra):
    return client.post(
        LOGIN, {"email": account.user.email, "password": PASSWORD, **extra}, format="json"
    )


def test_a_password_alone_does_not_open_a_two_factor_account(owner):
    enable_two_factor(owner.user)
    client = APIClient()

    response = _login(client, owner)

    assert response.status_code == 400
    assert response.json()["code"] == "otp_required"
    assert client.get("/api/me").status_code in (401, 403)
    assert not AuditLog.objects.filter(action=AuditLog.Action.LOGIN).exists()


def test_a_wrong_code_is_refused_and_audited(owner):
    secret, _ = enable_two_factor(owner.user)
    wrong = str((int(totp_code(secret)) + 1) % 1_000_000).zfill(6)
    client = APIClient()

    response = _login(client, owner, otp=wrong)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_otp"
    assert client.get("/api/me").status_code in (401, 403)
    failed = AuditLog.objects.get(action=AuditLog.Action.LOGIN_FAILED)
    assert failed.actor_email == owner.user.email
    assert failed.metadata == {"reason": "invalid_otp"}


def test_the_authenticator_code_opens_the_session(owner):
    secret, _ = enable_two_factor(owner.user)
    client = APIClient()

    response = _login(client, owner, otp=totp_code(secret))

    assert response.status_code == 200
    assert client.get("/api/me").json()["tenant"]["id"] == owner.tenant.id
    assert AuditLog.objects.filter(action=AuditLog.Action.LOGIN, actor=owner.user).exists()


def test_an_authenticator_code_cannot_be_replayed(owner):
    secret, _ = enable_two_factor(owner.user)
    code = totp_code(secret)
    assert _login(APIClient(), owner, otp=code).status_code == 200

    replay = _login(APIClient(), owner, otp=code)

    assert replay.json()["code"] == "invalid_otp"


def test_a_recovery_code_works_once(owner):
    _, recovery_codes = enable_two_factor(owner.user)

    first = _login(APIClient(), owner, otp=recovery_codes[0])
    second = _login(APIClient(), owner, otp=recovery_codes[0])

    assert first.status_code == 200
    assert second.status_code == 400
    assert second.json()["code"] == "invalid_otp"


def test_a_wrong_password_says_nothing_about_two_factor(owner):
    secret, _ = enable_two_factor(owner.user)

    response = APIClient().post(
        LOGIN,
        {"email": owner.user.email, "password": "wrong password", "otp": totp_code(secret)},
        format="json",
    )

    assert response.json()["code"] == "invalid_credentials"
