"""The local fake Stripe (`python -m simulator.payments`) on a free port, its webhooks sent to
the API's live server, and the real `stripe` library pointed at it."""

import httpx
import pytest

from conftest import free_port, wait_until

SECRET = "whsec_test_secret"


@pytest.fixture
def fake_stripe(start_process, live_server, settings):
    port = free_port()
    start_process(
        "-m",
        "simulator.payments",
        "--port",
        str(port),
        "--webhook-url",
        f"{live_server.url}/api/billing/stripe/webhook",
        "--webhook-secret",
        SECRET,
    )
    url = f"http://127.0.0.1:{port}"

    def answers():
        try:
            return httpx.get(f"{url}/v1/checkout/sessions/cs_test_none", timeout=1).status_code
        except httpx.HTTPError:
            return False

    wait_until(answers)
    settings.STRIPE_API_BASE = url
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    settings.USD_BRL_RATE = "5.40"
    return url
