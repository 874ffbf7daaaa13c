import pytest
from django.contrib.auth.hashers import identify_hasher

from accounts.models import AuditLog, Membership, User

SIGNUP = "/api/auth/signup"
STRONG_PASSWORD = "vast-orbit-lantern-42"


def _signup(client, email="ada@example.com", password=STRONG_PASSWORD, organization="Ada Labs"):
    return client.post(
        SIGNUP,
        {"email": email, "password": password, "organization": organization},
        format="json",
    )


@pytest.mark.django_db
def test_signup_creates_user_owner_tenant_and_a_working_first_token(anonymous):
    response = _signup(anonymous)

    assert response.status_code == 201
    body = response.json()
    assert body["user"] == {"email": "ada@example.com"}
    assert body["tenant"]["name"] == "Ada Labs"
    assert body["token"].startswith("dmt_")
    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {body['token']}")
    me = anonymous.get("/api/me")
    assert me.status_code == 200
    assert me.json() == {
        "email": "ada@example.com",
        "tenant": {"id": body["tenant"]["id"], "name": "Ada Labs"},
        "role": "owner",
    }


@pytest.mark.django_db
def test_signup_is_recorded_in_the_audit_log(anonymous):
    response = _signup(anonymous)

    actions = set(
        AuditLog.objects.filter(tenant_id=response.json()["tenant"]["id"]).values_list(
            "action", flat=True
        )
    )
    assert actions == {AuditLog.Action.SIGNUP, AuditLog.Action.TOKEN_CREATED}


@pytest.mark.django_db
@pytest.mark.parametrize("password", ["short1", "password123", "12345678901234", "ada@example.com"])
def test_a_weak_password_is_refused_with_weak_password(anonymous, password):
    response = _signup(anonymous, password=password)

    assert response.status_code == 400
    assert response.json()["code"] == "weak_password"
    assert not User.objects.exists()


@pytest.mark.django_db
def test_an_email_already_taken_in_any_case_is_refused(anonymous):
    _signup(anonymous, email="ada@example.com")

    response = _signup(anonymous, email="  ADA@Example.com ", organization="Other")

    assert response.status_code == 400
    assert response.json()["code"] == "email_taken"
    assert Membership.objects.count() == 1


@pytest.mark.django_db
def test_missing_fields_are_named_in_the_error(anonymous):
    response = anonymous.post(SIGNUP, {"email": "not-an-email"}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] in {"invalid", "required"}
    assert set(body["errors"]) == {"email", "password", "organization"}


@pytest.mark.django_db
def test_malformed_json_is_a_400_not_a_500(anonymous):
    response = anonymous.generic("POST", SIGNUP, "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


@pytest.mark.django_db
@pytest.mark.real_password_hashing
def test_passwords_are_stored_with_bcrypt_sha256_at_cost_12(anonymous):
    _signup(anonymous)

    stored = User.objects.get().password
    assert identify_hasher(stored).algorithm == "bcrypt_sha256"
    assert stored.startswith("bcrypt_sha256$$2b$12$")
    assert User.objects.get().check_password(STRONG_PASSWORD)


@pytest.mark.django_db
def test_signup_is_throttled_per_address(anonymous):
    statuses = [
        _signup(anonymous, email=f"user{number}@example.com").status_code for number in range(21)
    ]

    assert statuses[:20] == [201] * 20
    assert statuses[20] == 429
