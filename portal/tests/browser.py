"""Real-browser test fixtures: Playwright for Python driving Debian's Chromium against a live
system — uvicorn serving the ASGI app (HTTP and the /ws/tenant/ websocket), a Celery worker,
the simulated GPU market and the local fake Stripe, all on the test database.

Chromium is Debian's (/usr/bin/chromium, headless, --no-sandbox): Playwright's own browser
download cannot be used here. `make test` installs it when it is missing and it runs as root;
otherwise every browser test is skipped with the reason (pytest -rs prints it). Each browser
test leaves a full-page screenshot of each of its pages in var/test/artifacts/.

Use: mark the test `@pytest.mark.browser`, take `live_portal` and `page` (desktop) or
`phone_page` (375 x 740), sign in with `live_portal.sign_in(page, user)`, and assert that
`page.console_errors` is empty at the end; `save_screenshot(page, step)` keeps a step too.
"""

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.test import Client

from conftest import free_port, wait_until, worker_arguments

# Debian's package puts it here; DUMONT_CHROMIUM points elsewhere (the harness's own test).
CHROMIUM = Path(os.environ.get("DUMONT_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(settings.BASE_DIR) / "var" / "test" / "artifacts"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}
STRIPE_WEBHOOK_SECRET = "whsec_browser_tests"


def missing_browser() -> str | None:
    """Why browser tests cannot run here, or None when they can."""
    if importlib.util.find_spec("playwright") is None:
        return "browser tests need Playwright for Python: run `make install-dev`"
    if not os.access(CHROMIUM, os.X_OK):
        return (
            f"browser tests need Debian's Chromium at {CHROMIUM}: run `make test` as root "
            "(it installs it) or `apt-get install -y chromium`"
        )
    return None


def skip_without_browser(items: list[pytest.Item]) -> None:
    """Skip every `browser` test, with the reason, when Chromium or Playwright is missing
    (before any fixture starts a server)."""
    reason = missing_browser()
    if reason:
        for item in items:
            if item.get_closest_marker("browser"):
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium per test module (each test gets its own context).

    Playwright's sync API keeps an event loop running in this thread while it is started, so
    Django sees an "async context" around the ORM calls a test makes between browser steps (they
    are synchronous), and code that runs its own loop (asyncio.run, async_to_sync) could not run.
    Hence a module's lifetime, not the session's: the tests after it get their thread back."""
    reason = missing_browser()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        playwright = sync_playwright().start()
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True
        )
        yield browser
        browser.close()
        playwright.stop()


@pytest.fixture(scope="session")
def collected_static():
    """The portal's static files where whitenoise serves them from (STATIC_ROOT), once a run."""
    from django.core.management import call_command

    call_command("collectstatic", interactive=False, verbosity=0)


@dataclass(frozen=True)
class LivePortal:
    url: str
    stripe_url: str
    simulator_url: str

    def sign_in(self, page, user) -> None:
        """Give the browser a session of `user` (as if they had signed in)."""
        client = Client()
        client.force_login(user)
        page.context.add_cookies(
            [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": self.url}]
        )

    def goto(self, page, path: str):
        response = page.goto(f"{self.url}{path}")
        page.wait_for_load_state("networkidle")
        return response


@pytest.fixture
def live_portal_environment() -> dict[str, str]:
    """More environment for the live server and worker (override in a test module)."""
    return {}


@pytest.fixture
def live_portal(
    chromium,
    collected_static,
    test_database_url,
    simulator,
    start_process,
    settings,
    live_portal_environment,
) -> LivePortal:
    """uvicorn (HTTP + websocket), a Celery worker, the simulator and the fake Stripe, all on
    the test database. Stripe's webhooks reach uvicorn; the worker reaches the simulator;
    simulated machines' agents reach uvicorn (DUMONT_PUBLIC_URL)."""
    from dumont.celery import app

    app.control.purge()  # tasks left in the test broker by earlier tests are not ours
    port, stripe_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    stripe_url = f"http://127.0.0.1:{stripe_port}"
    environment = {
        "DATABASE_URL": test_database_url,
        "SIM_PROVIDER_URL": simulator.url,
        "DUMONT_PUBLIC_URL": url,
        "STRIPE_API_BASE": stripe_url,
        "STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET,
        "AGENT_HEARTBEAT_SECONDS": "0.5",
        **live_portal_environment,
    }
    start_process(
        "-m",
        "simulator.payments",
        "--port",
        str(stripe_port),
        "--webhook-url",
        f"{url}/api/billing/stripe/webhook",
        "--webhook-secret",
        STRIPE_WEBHOOK_SECRET,
    )
    start_process(
        "-m",
        "uvicorn",
        "dumont.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        env=environment,
    )
    start_process(*worker_arguments(), env=environment)
    settings.DUMONT_PUBLIC_URL = url
    settings.STRIPE_API_BASE = stripe_url
    settings.STRIPE_WEBHOOK_SECRET = STRIPE_WEBHOOK_SECRET

    def answers(address: str) -> bool:
        try:
            return httpx.get(address, timeout=1).status_code < 500
        except httpx.HTTPError:
            return False

    wait_until(lambda: answers(f"{url}/static/portal/portal.js"), timeout=60)
    wait_until(lambda: answers(f"{stripe_url}/v1/checkout/sessions/cs_test_none"), timeout=30)
    return LivePortal(url, stripe_url, simulator.url)


def _artifact_name(node_name: str, label: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', node_name)}-{label}.png"


def save_screenshot(page, step: str) -> Path:
    """A full-page screenshot of `page` now, named after the test, its tab and `step`."""
    path = page.artifact_path.with_name(f"{page.artifact_path.stem}-{step}.png")
    page.screenshot(path=str(path), full_page=True)
    return path


def _open_page(chromium, request, viewport: dict, label: str):
    context = chromium.new_context(viewport=viewport, locale="en-US")
    page = context.new_page()
    page.artifact_path = _artifact_name(request.node.name, label)
    page.set_default_timeout(15_000)
    page.console_errors = []

    def on_console(message) -> None:
        address = message.location.get("url", "")
        # Chromium asks every site for /favicon.ico; the portal has none (not a page error).
        if message.type == "error" and not address.endswith("/favicon.ico"):
            page.console_errors.append(f"{message.text} ({address})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: page.console_errors.append(str(error)))
    yield page
    try:
        page.screenshot(path=str(page.artifact_path), full_page=True)
    finally:
        context.close()


@pytest.fixture
def page(chromium, request):
    """A desktop-width browser tab (1280 x 800); its console errors in `page.console_errors`."""
    yield from _open_page(chromium, request, DESKTOP, "desktop")


@pytest.fixture
def phone_page(chromium, request):
    """A phone-width browser tab (375 x 740); its console errors in `page.console_errors`."""
    yield from _open_page(chromium, request, PHONE, "phone")
