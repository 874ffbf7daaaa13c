"""Accounts in the browser (allauth: sign-up, sign-in, 2FA) and the account settings pages."""

import re

import pytest
from allauth.mfa.models import Authenticator
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.core import mail
from django.test import Client

from accounts.models import ApiToken, AuditLog, Membership, SshKey, Tenant, User
from accounts.services import SESSION_TENANT_KEY
from accounts.tests.factories import PASSWORD
from accounts.tests.two_factor import enable_two_factor, totp_code, verify_email
from billing import ledger
from billing.models import Subscription, TrialClaim

pytestmark = pytest.mark.django_db

SIGNUP = "/accounts/signup/"
LOGIN = "/accounts/login/"
LOGOUT = "/accounts/logout/"
TWO_FACTOR_STEP = "/accounts/2fa/authenticate/"
NEW_PASSWORD = "a long passphrase for Ada"


def signed_in(account) -> Client:
    client = Client()
    client.force_login(account.user)
    return client


def sign_in(account, password: str = PASSWORD) -> tuple[Client, object]:
    """Sign in through allauth's page, as a person does; returns the client and the answer."""
    client = Client()
    response = client.post(LOGIN, {"login": account.user.email, "password": password})
    return client, response


def new_public_key(comment: str = "ada@laptop") -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return f"{line.decode()} {comment}"


def private_key_text() -> str:
    return (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        .decode()
    )


# --- Sign-up -----------------------------------------------------------------------------------


def _sign_up(client: Client, email: str = "ada@example.com"):
    return client.post(
        SIGNUP,
        {
            "email": email,
            "organization": "Ada Labs",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
        },
    )


def test_signing_up_creates_the_organisation_with_its_trial_and_signs_in(settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "optional"
    client = Client()

    response = _sign_up(client)

    assert response.status_code == 302
    user = User.objects.get(email="ada@example.com")
    tenant = Tenant.objects.get(name="Ada Labs")
    assert Membership.objects.get(user=user, tenant=tenant).role == Membership.Role.OWNER
    assert ledger.balance_micros(tenant.id) == 79_000_000
    assert Subscription.objects.get(tenant=tenant).status == Subscription.Status.TRIALING
    assert TrialClaim.objects.filter(email="ada@example.com", tenant=tenant).exists()
    assert AuditLog.objects.filter(action=AuditLog.Action.SIGNUP, tenant=tenant).exists()
    assert not ApiToken.objects.filter(user=user).exists()  # none made that nobody could see
    dashboard = client.get("/")
    assert dashboard.status_code == 200
    assert client.session[SESSION_TENANT_KEY] == tenant.id


def test_with_mandatory_verification_the_session_starts_at_the_mailed_link(settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    client = Client()

    response = _sign_up(client)

    assert response.status_code == 302
    assert client.get("/").status_code == 302  # not signed in yet
    assert Tenant.objects.filter(name="Ada Labs").exists()  # the trial is already granted
    [message] = mail.outbox
    assert message.to == ["ada@example.com"]
    link = re.search(r"http://testserver(/accounts/confirm-email/\S+/)", message.body).group(1)
    confirmed = client.post(link)
    assert confirmed.status_code == 302
    assert client.get("/").status_code == 200
    assert client.session[SESSION_TENANT_KEY] == Tenant.objects.get(name="Ada Labs").id
    assert AuditLog.objects.filter(
        action=AuditLog.Action.LOGIN, actor__email="ada@example.com"
    ).exists()


def test_signing_up_again_with_an_email_of_the_api_creates_nothing(settings, owner):
    settings.ACCOUNT_EMAIL_VERIFICATION = "optional"
    tenants = Tenant.objects.count()

    response = _sign_up(Client(), email=owner.user.email)

    assert response.status_code in (200, 302)
    assert Tenant.objects.count() == tenants
    assert User.objects.filter(email=owner.user.email).count() == 1


def test_a_weak_password_is_refused_on_the_form(settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "optional"

    response = Client().post(
        SIGNUP,
        {"email": "b@example.com", "organization": "B", "password1": "123", "password2": "123"},
    )

    assert response.status_code == 200
    assert response.context["form"].errors["password1"]
    assert not User.objects.filter(email="b@example.com").exists()


def test_the_sign_in_pages_are_in_the_portal_frame():
    page = Client().get(LOGIN).content.decode()

    assert "portal/vendor/pico/pico.min.css" in page
    assert 'name="login"' in page
    assert SIGNUP in page


# --- Sign-in and sign-out ------------------------------------------------------------------------


def test_signing_in_sets_the_session_tenant_and_is_audited(owner):
    verify_email(owner.user)

    client, response = sign_in(owner)

    assert response.status_code == 302
    assert client.session[SESSION_TENANT_KEY] == owner.tenant.id
    login = AuditLog.objects.get(action=AuditLog.Action.LOGIN)
    assert (login.actor, login.tenant, login.ip) == (owner.user, owner.tenant, "127.0.0.1")


def test_a_wrong_password_shows_an_error_and_is_audited(owner):
    verify_email(owner.user)

    client, response = sign_in(owner, password="not the password")

    assert response.status_code == 200
    assert response.context["form"].errors
    assert "_auth_user_id" not in client.session
    failed = AuditLog.objects.get(action=AuditLog.Action.LOGIN_FAILED)
    assert failed.actor_email == owner.user.email


def test_signing_out_is_audited(owner):
    verify_email(owner.user)
    client, _ = sign_in(owner)

    response = client.post(LOGOUT)

    assert response.status_code == 302
    assert client.get("/").status_code == 302
    logout = AuditLog.objects.get(action=AuditLog.Action.LOGOUT)
    assert (logout.actor, logout.tenant) == (owner.user, owner.tenant)


# --- Two-factor authentication -------------------------------------------------------------------


def test_turning_on_totp_with_a_computed_code_makes_sign_in_ask_for_it(owner):
    verify_email(owner.user)
    client, _ = sign_in(owner)
    # Turning 2FA on asks for the password again first.
    asked = client.get("/accounts/2fa/totp/activate/")
    assert asked["Location"].startswith("/accounts/reauthenticate/")
    client.post(asked["Location"], {"password": PASSWORD})
    assert client.get("/accounts/2fa/totp/activate/").status_code == 200
    secret = client.session["mfa.totp.secret"]

    activated = client.post("/accounts/2fa/totp/activate/", {"code": totp_code(secret)})

    assert activated.status_code == 302
    assert Authenticator.objects.filter(user=owner.user, type=Authenticator.Type.TOTP).exists()
    client.post(LOGOUT)
    again, response = sign_in(owner)
    assert response["Location"].startswith(TWO_FACTOR_STEP)
    assert again.get("/").status_code == 302  # the password alone did not sign in
    # Activation checks the code without spending it, so the same period's code works here.
    done = again.post(TWO_FACTOR_STEP, {"code": totp_code(secret)})
    assert done.status_code == 302
    assert again.get("/").status_code == 200
    assert again.session[SESSION_TENANT_KEY] == owner.tenant.id


def test_a_wrong_code_at_the_two_factor_step_is_refused_and_audited(owner):
    verify_email(owner.user)
    secret, _ = enable_two_factor(owner.user)
    client, _ = sign_in(owner)
    wrong = str((int(totp_code(secret)) + 1) % 1_000_000).zfill(6)

    response = client.post(TWO_FACTOR_STEP, {"code": wrong})

    assert response.status_code == 200
    assert client.get("/").status_code == 302
    failed = AuditLog.objects.get(action=AuditLog.Action.LOGIN_FAILED)
    assert failed.metadata == {"reason": "invalid_otp"}
    assert not AuditLog.objects.filter(action=AuditLog.Action.LOGIN).exists()


def test_a_recovery_code_signs_in_once(owner):
    verify_email(owner.user)
    _, recovery_codes = enable_two_factor(owner.user)

    first, _ = sign_in(owner)
    first.post(TWO_FACTOR_STEP, {"code": recovery_codes[0]})
    second, _ = sign_in(owner)
    second.post(TWO_FACTOR_STEP, {"code": recovery_codes[0]})

    assert first.get("/").status_code == 200
    assert second.get("/").status_code == 302


def test_the_api_login_of_a_portal_two_factor_user_needs_the_code(owner):
    verify_email(owner.user)
    secret, _ = enable_two_factor(owner.user)
    client = Client()

    without = client.post(
        "/api/auth/login",
        {"email": owner.user.email, "password": PASSWORD},
        content_type="application/json",
    )
    with_code = client.post(
        "/api/auth/login",
        {"email": owner.user.email, "password": PASSWORD, "otp": totp_code(secret)},
        content_type="application/json",
    )

    assert without.json()["code"] == "otp_required"
    assert with_code.status_code == 200


def test_the_security_page_shows_the_two_factor_status(owner):
    browser = signed_in(owner)
    assert browser.get("/settings/")["Location"] == "/settings/security/"
    off = browser.get("/settings/security/").content.decode()
    enable_two_factor(owner.user)

    on = browser.get("/settings/security/").content.decode()

    assert "/accounts/2fa/totp/activate/" in off
    assert "/accounts/2fa/totp/deactivate/" in on
    assert "/accounts/2fa/recovery-codes/" in on
    assert "10 unused recovery codes left" in on
    assert "/accounts/password/change/" in on


# --- SSH keys --------------------------------------------------------------------------------


def test_adding_an_ssh_key_lists_it_with_its_fingerprint(owner):
    browser = signed_in(owner)

    response = browser.post(
        "/settings/ssh-keys/", {"name": "laptop", "public_key": new_public_key()}
    )

    assert response.status_code == 302
    key = SshKey.objects.get(tenant=owner.tenant)
    page = browser.get("/settings/ssh-keys/").content.decode()
    assert "laptop" in page
    assert key.fingerprint in page
    assert AuditLog.objects.filter(action=AuditLog.Action.SSH_KEY_ADDED).exists()


@pytest.mark.parametrize(
    ("public_key", "error"),
    [
        (private_key_text(), "This is a private key"),
        ("ssh-ed25519 not-base64!!", "Not an OpenSSH public key"),
        ("ssh-dss AAAAB3NzaC1kc3M= old", "This key type is not supported"),
    ],
)
def test_a_bad_ssh_key_shows_the_reason_under_the_field(owner, public_key, error):
    response = signed_in(owner).post(
        "/settings/ssh-keys/", {"name": "bad", "public_key": public_key}
    )

    assert response.status_code == 400
    assert error in response.context["form"].errors["public_key"][0]
    assert error in response.content.decode()
    assert not SshKey.objects.exists()


def test_the_same_ssh_key_twice_is_refused_on_the_field(owner):
    browser = signed_in(owner)
    public_key = new_public_key()
    browser.post("/settings/ssh-keys/", {"name": "one", "public_key": public_key})

    response = browser.post("/settings/ssh-keys/", {"name": "two", "public_key": public_key})

    assert response.status_code == 400
    assert "already registered" in response.context["form"].errors["public_key"][0]
    assert SshKey.objects.count() == 1


def test_removing_an_ssh_key(owner):
    browser = signed_in(owner)
    browser.post("/settings/ssh-keys/", {"name": "laptop", "public_key": new_public_key()})
    key = SshKey.objects.get()

    response = browser.post(f"/settings/ssh-keys/{key.pk}/remove/")

    assert response.status_code == 302
    assert not SshKey.objects.exists()


def test_the_ssh_key_list_costs_the_same_queries_for_many_keys(
    owner, django_assert_max_num_queries
):
    browser = signed_in(owner)
    for number in range(15):
        browser.post("/settings/ssh-keys/", {"name": f"k{number}", "public_key": new_public_key()})

    with django_assert_max_num_queries(8):
        assert browser.get("/settings/ssh-keys/").status_code == 200


# --- API tokens ------------------------------------------------------------------------------


def test_a_new_token_is_shown_once_and_works(owner):
    browser = signed_in(owner)

    created = browser.post("/settings/tokens/", {"name": "ci"})

    assert created["Location"] == "/settings/tokens/created/"
    page = browser.get(created["Location"])
    plaintext = re.search(r'value="(dmt_[^"]+)"', page.content.decode()).group(1)
    assert page["Cache-Control"] == "no-store"
    token = ApiToken.objects.get(name="ci")
    assert plaintext.startswith(token.prefix)
    me = Client().get("/api/me", HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert me.status_code == 200
    again = browser.get("/settings/tokens/created/")
    assert again.status_code == 302
    listing = browser.get("/settings/tokens/").content.decode()
    assert plaintext not in listing
    assert token.prefix in listing


def test_a_token_in_the_past_is_refused_on_the_field(owner):
    response = signed_in(owner).post(
        "/settings/tokens/", {"name": "old", "expires_at": "2001-01-01T00:00"}
    )

    assert response.status_code == 400
    assert response.context["form"].errors["expires_at"]
    assert not ApiToken.objects.filter(name="old").exists()


def test_revoking_a_token_stops_it(owner):
    browser = signed_in(owner)
    token = ApiToken.objects.get(user=owner.user)

    response = browser.post(f"/settings/tokens/{token.pk}/revoke/")

    assert response.status_code == 302
    assert Client().get("/api/me", HTTP_AUTHORIZATION=f"Bearer {owner.token}").status_code == 401
    assert "revoked" in browser.get("/settings/tokens/").content.decode()


def test_a_member_sees_and_revokes_only_their_own_tokens(owner, account_factory):
    member = account_factory(role=Membership.Role.MEMBER, tenant=owner.tenant)
    owners_token = ApiToken.objects.get(user=owner.user)
    browser = signed_in(member)

    page = browser.get("/settings/tokens/").content.decode()
    revoke = browser.post(f"/settings/tokens/{owners_token.pk}/revoke/")

    assert owners_token.prefix not in page
    assert revoke.status_code == 404
    assert ApiToken.objects.get(pk=owners_token.pk).revoked_at is None


def test_the_token_list_costs_the_same_queries_for_many_tokens(
    owner, account_factory, django_assert_max_num_queries
):
    for _ in range(10):
        account_factory(role=Membership.Role.MEMBER, tenant=owner.tenant)

    browser = signed_in(owner)

    with django_assert_max_num_queries(8):
        assert browser.get("/settings/tokens/").status_code == 200


# --- Members -----------------------------------------------------------------------------------


def test_an_owner_adds_an_existing_account_and_changes_its_role(owner, account_factory):
    other = account_factory()  # someone with their own organisation
    browser = signed_in(owner)

    added = browser.post("/settings/members/", {"email": other.user.email, "role": "member"})
    membership = Membership.objects.get(user=other.user, tenant=owner.tenant)
    changed = browser.post(f"/settings/members/{membership.pk}/role/", {"role": "admin"})

    assert added.status_code == 302
    assert changed.status_code == 302
    membership.refresh_from_db()
    assert membership.role == Membership.Role.ADMIN
    assert AuditLog.objects.filter(action=AuditLog.Action.ROLE_CHANGED).exists()


def test_adding_an_unknown_email_shows_the_reason(owner):
    response = signed_in(owner).post(
        "/settings/members/", {"email": "nobody@example.com", "role": "member"}
    )

    assert response.status_code == 400
    assert "sign up first" in response.context["form"].errors["email"][0]


def test_a_member_sees_the_members_read_only_and_cannot_change_roles(owner, account_factory):
    member = account_factory(role=Membership.Role.MEMBER, tenant=owner.tenant)
    browser = signed_in(member)

    page = browser.get("/settings/members/").content.decode()
    response = browser.post(f"/settings/members/{owner.membership.pk}/role/", {"role": "member"})

    assert owner.user.email in page
    assert 'name="role"' not in page
    assert response.status_code == 302
    owner.membership.refresh_from_db()
    assert owner.membership.role == Membership.Role.OWNER
    assert "does not allow" in browser.get("/settings/members/").content.decode()


def test_an_admin_cannot_make_someone_owner(owner, account_factory):
    admin = account_factory(role=Membership.Role.ADMIN, tenant=owner.tenant)
    member = account_factory(role=Membership.Role.MEMBER, tenant=owner.tenant)

    signed_in(admin).post(f"/settings/members/{member.membership.pk}/role/", {"role": "owner"})

    member.membership.refresh_from_db()
    assert member.membership.role == Membership.Role.MEMBER


def test_the_last_owner_cannot_be_removed_or_demoted(owner):
    browser = signed_in(owner)

    browser.post(f"/settings/members/{owner.membership.pk}/remove/")
    browser.post(f"/settings/members/{owner.membership.pk}/role/", {"role": "admin"})

    owner.membership.refresh_from_db()
    assert owner.membership.role == Membership.Role.OWNER
    page = browser.get("/settings/members/").content.decode()
    assert "at least one owner" in page


def test_an_admin_removes_a_member(owner, account_factory):
    member = account_factory(role=Membership.Role.MEMBER, tenant=owner.tenant)

    response = signed_in(owner).post(f"/settings/members/{member.membership.pk}/remove/")

    assert response.status_code == 302
    assert not Membership.objects.filter(pk=member.membership.pk).exists()


def test_the_member_list_costs_the_same_queries_for_many_members(
    owner, account_factory, django_assert_max_num_queries
):
    for _ in range(12):
        account_factory(role=Membership.Role.MEMBER, tenant=owner.tenant)

    browser = signed_in(owner)

    with django_assert_max_num_queries(8):
        assert browser.get("/settings/members/").status_code == 200


# --- Tenant isolation ----------------------------------------------------------------------------


def test_tenant_b_cannot_act_on_tenant_a_keys_tokens_or_members(two_tenants, account_factory):
    tenant_a, tenant_b = two_tenants
    signed_in(tenant_a).post("/settings/ssh-keys/", {"name": "a", "public_key": new_public_key()})
    key = SshKey.objects.get(tenant=tenant_a.tenant)
    token = ApiToken.objects.get(user=tenant_a.user)
    member = account_factory(role=Membership.Role.MEMBER, tenant=tenant_a.tenant)
    browser = signed_in(tenant_b)

    answers = [
        browser.post(f"/settings/ssh-keys/{key.pk}/remove/"),
        browser.post(f"/settings/tokens/{token.pk}/revoke/"),
        browser.post(f"/settings/members/{member.membership.pk}/role/", {"role": "admin"}),
        browser.post(f"/settings/members/{member.membership.pk}/remove/"),
    ]

    assert [answer.status_code for answer in answers] == [404, 404, 404, 404]
    assert SshKey.objects.filter(pk=key.pk).exists()
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None
    assert Membership.objects.get(pk=member.membership.pk).role == Membership.Role.MEMBER
    for page in ("/settings/ssh-keys/", "/settings/tokens/", "/settings/members/"):
        content = browser.get(page).content.decode()
        assert key.fingerprint not in content
        assert token.prefix not in content
        assert member.user.email not in content


def test_a_forgotten_password_is_reset_through_the_mailed_link(owner):
    verify_email(owner.user)
    client = Client()

    client.post("/accounts/password/reset/", {"email": owner.user.email})

    [message] = mail.outbox
    link = re.search(r"http://testserver(/accounts/password/reset/key/\S+/)", message.body).group(1)
    form_page = client.get(link)  # allauth moves the key into the session and redirects
    client.post(form_page["Location"], {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    _, response = sign_in(owner, password=NEW_PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == "/"


def test_the_admin_sign_in_is_the_portal_one_with_its_second_factor():
    response = Client().get("/admin/login/?next=/admin/")

    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN)


def test_the_password_page_of_allauth_sits_in_the_settings_menu(owner):
    page = signed_in(owner).get("/accounts/password/change/").content.decode()

    assert 'href="/settings/" aria-current="page"' in page
    assert 'href="/settings/security/" aria-current="page"' in page
