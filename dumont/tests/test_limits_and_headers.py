"""Production hardening a client or a browser notices: rate limits, body size, CORS, headers."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.test import Client


@pytest.fixture
def rates(settings):
    """Set low API rates for one test (the defaults are far above what a test sends)."""

    def set_rates(**rates: str) -> None:
        framework = settings.REST_FRAMEWORK
        settings.REST_FRAMEWORK = {
            **framework,
            "DEFAULT_THROTTLE_RATES": {**framework["DEFAULT_THROTTLE_RATES"], **rates},
        }

    return set_rates


def test_a_token_over_its_rate_gets_429_with_retry_after(owner, rates):
    rates(token="3/min")

    statuses = [owner.client.get("/api/me").status_code for _ in range(4)]
    refused = owner.client.get("/api/me")

    assert statuses == [200, 200, 200, 429]
    assert refused.json()["code"] == "throttled"
    assert int(refused["Retry-After"]) > 0
    assert refused.json()["retry_after_seconds"] == int(refused["Retry-After"])


def test_the_token_rate_counts_each_token_apart(two_tenants, rates):
    a, b = two_tenants
    rates(token="2/min")

    for _ in range(3):
        a.client.get("/api/me")

    assert a.client.get("/api/me").status_code == 429
    assert b.client.get("/api/me").status_code == 200


def test_an_address_over_its_rate_gets_429_even_without_credentials(db, anonymous, rates):
    rates(address="3/min")

    statuses = [anonymous.get("/api/billing/plans").status_code for _ in range(3)]
    refused = anonymous.get("/api/instances")  # unauthenticated guesses count too

    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.json()["code"] == "throttled"
    assert int(refused["Retry-After"]) > 0


def test_the_health_check_is_not_rate_limited(db, anonymous, rates):
    rates(address="1/min")

    anonymous.get("/api/billing/plans")

    assert anonymous.get("/api/health").status_code != 429


def test_an_oversized_json_body_is_refused_with_413(owner, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"name": "x" * 2000, "public_key": "ssh-ed25519 AAAA"})

    response = owner.client.post("/api/ssh-keys", body, content_type="application/json")

    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"


def test_a_body_under_the_limit_is_handled_as_usual(owner, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = owner.client.post("/api/tokens", {"name": "small"}, format="json")

    assert response.status_code == 201


def test_a_cross_origin_preflight_gets_no_allow_origin_by_default(anonymous):
    response = anonymous.options(
        "/api/instances",
        HTTP_ORIGIN="https://evil.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization",
    )

    assert "Access-Control-Allow-Origin" not in response


def test_a_listed_origin_may_call_the_api_without_cookies(anonymous, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example"]

    allowed = anonymous.options(
        "/api/instances",
        HTTP_ORIGIN="https://app.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
    )
    other = anonymous.options(
        "/api/instances",
        HTTP_ORIGIN="https://evil.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
    )

    assert allowed["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Access-Control-Allow-Credentials" not in allowed
    assert "Access-Control-Allow-Origin" not in other


def test_portal_pages_carry_the_security_headers(db):
    response = Client().get("/accounts/login/")

    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "style-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_portal_pages_have_no_inline_script_or_handler(owner):
    browser = Client()
    browser.force_login(owner.user)

    page = browser.get("/").content.decode()

    assert "<script>" not in page
    assert " onchange=" not in page
    assert " onclick=" not in page
    assert " onsubmit=" not in page


def test_cookies_are_http_only_and_same_site(db):
    response = Client().get("/accounts/login/")

    csrf = response.cookies["csrftoken"]
    assert csrf["httponly"]
    assert csrf["samesite"] == "Lax"


def test_repeated_portal_sign_ins_from_one_address_are_refused(owner, settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "login": "3/m/ip"}
    browser = Client()
    wrong = {"login": owner.user.email, "password": "not-the-password"}

    statuses = [browser.post("/accounts/login/", wrong).status_code for _ in range(4)]

    assert statuses[:3] == [200, 200, 200]
    assert statuses[3] == 429


@pytest.mark.django_db(transaction=True)
def test_parallel_login_guesses_get_no_more_than_the_limit(owner, live_server, rates):
    """10 wrong passwords at once from one address, on a server answering them in parallel
    (threads; its listen backlog is 10): a login rate of 4/min lets exactly 4 through, however
    the requests interleave."""
    rates(login="4/min")
    guesses = 10
    start = threading.Barrier(guesses)

    def guess(_number: int) -> int:
        with httpx.Client(base_url=live_server.url, timeout=30) as client:
            start.wait()
            body = {"email": owner.user.email, "password": "wrong"}
            return client.post("/api/auth/login", json=body).status_code

    with ThreadPoolExecutor(max_workers=guesses) as pool:
        statuses = sorted(pool.map(guess, range(guesses)))

    assert statuses == [400] * 4 + [429] * 6
