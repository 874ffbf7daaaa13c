"""A new customer's journey in a real browser against the live system: sign up → the trial credit
is shown → create an instance in the wizard → its card turns running without a reload →
hibernate it → add an SSH key → create an API token (and use it).

It needs the sign-up (allauth), dashboard, wizard and settings pages of the other portal
areas; where this branch lacks them the test is an expected failure that does not run."""

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.urls import NoReverseMatch, reverse

from portal.tests.browser import save_screenshot

PASSWORD = "journey-Passw0rd-long"
PAGES = {
    "sign-up": "account_signup",
    "new-instance wizard": "portal:instances-new",
    "SSH keys": "portal:account-ssh-keys",
    "API tokens": "portal:account-tokens",
}


def _missing_pages() -> list[str]:
    missing = []
    for page, name in PAGES.items():
        try:
            reverse(name)
        except NoReverseMatch:
            missing.append(page)
    return missing


MISSING = _missing_pages()
pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.xfail(
        bool(MISSING),
        reason=f"pages not on this branch yet: {', '.join(MISSING)}",
        run=False,
    ),
]


@pytest.fixture
def live_portal_environment() -> dict[str, str]:
    return {"EMAIL_VERIFICATION": "none"}  # signed in at once: no mail link to follow


def _public_key() -> str:
    key = Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode() + " me@laptop"


def _submit(page, label: str) -> None:
    with page.expect_navigation():
        page.locator("main").get_by_role("button", name=label).click()


def test_a_new_customer_signs_up_runs_an_instance_and_gets_a_token(live_portal, page):
    url = live_portal.url

    # Sign up: the organisation and its trial come with the account.
    live_portal.goto(page, "/accounts/signup/")
    page.fill("input[name=email]", "journey@example.com")
    if page.locator("input[name=organization]").count():
        page.fill("input[name=organization]", "Journey Labs")
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    with page.expect_navigation():
        page.locator("main form button[type=submit]").click()
    assert page.url == f"{url}/"

    # The trial credit is shown.
    live_portal.goto(page, "/billing/")
    assert page.locator(".balance").inner_text() == "$79.00"
    save_screenshot(page, "1-trial-credit")

    # Create an instance through the wizard (choosing the GPU ourselves).
    live_portal.goto(page, "/instances/new/")
    with page.expect_navigation():
        page.click("button[name=skip]")
    page.select_option("select[name=gpu]", "RTX 4090")
    page.fill("input[name=max_price]", "2")
    page.fill("input[name=name]", "journey")
    with page.expect_navigation():
        page.click("#machine-form button[type=submit]")
    _submit(page, "Next: confirm")
    save_screenshot(page, "2-confirm")
    _submit(page, "Create instance")
    assert page.url == f"{url}/"

    # Its card turns running over the websocket, without a reload.
    page.evaluate("window.journeyMark = 'not reloaded'")
    card = page.locator("[data-instance-id]").first
    card.locator("[data-status=running]").wait_for(timeout=60_000)
    assert page.evaluate("window.journeyMark") == "not reloaded"
    save_screenshot(page, "3-running")

    # Hibernate it from the card.
    card.locator("[data-action=hibernate]").click()
    page.locator("[data-instance-id] [data-status=hibernated]").wait_for(timeout=90_000)
    assert page.evaluate("window.journeyMark") == "not reloaded"
    save_screenshot(page, "4-hibernated")

    # Add an SSH key.
    live_portal.goto(page, "/settings/ssh-keys/")
    page.fill("input[name=name]", "laptop")
    page.fill("textarea[name=public_key]", _public_key())
    _submit(page, "Add key")
    assert page.locator("main table").get_by_text("laptop").count() == 1
    save_screenshot(page, "5-ssh-key")

    # Create an API token: shown once, and it works.
    live_portal.goto(page, "/settings/tokens/")
    page.fill("input[name=name]", "ci")
    _submit(page, "Create token")
    token = page.locator("input.token-secret").input_value()
    assert token.startswith("dmt_")
    me = httpx.get(f"{url}/api/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert me.status_code == 200 and me.json()["email"] == "journey@example.com"
    assert page.console_errors == []
