"""The market and billing pages in a real browser (Debian's Chromium through Playwright)
against the live system: charts drawn without console errors at desktop and phone widths,
credits bought through the fake Stripe Checkout, and the language switcher."""

import pytest

from billing import ledger
from conftest import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _chart_drawn(page, canvas_id: str) -> bool:
    return page.evaluate(
        """(id) => {
            const canvas = document.getElementById(id);
            const chart = canvas && window.Chart && Chart.getChart(canvas);
            return Boolean(chart) && canvas.width > 0 && canvas.height > 0;
        }""",
        canvas_id,
    )


@pytest.mark.parametrize("tab", ["page", "phone_page"])
def test_the_market_page_draws_its_charts_at_both_widths(live_portal, owner, market, tab, request):
    page = request.getfixturevalue(tab)
    live_portal.sign_in(page, owner.user)

    response = live_portal.goto(page, "/market/?gpu=H100")

    assert response.status == 200
    page.wait_for_function("document.documentElement.dataset.live === 'on'")  # websocket open
    assert _chart_drawn(page, "price-chart")
    assert page.locator(".heatmap tbody tr").count() == 7
    assert page.locator("#availability tbody tr").count() == 2
    page.fill("#savings_hours", "250")
    page.click("#savings button[type=submit]")
    page.wait_for_selector("#savings-result >> text=250 hours of H100")
    assert page.url.endswith("/market/?gpu=H100")  # htmx swapped the result in place
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"] + 1  # nothing wider than the screen
    assert page.console_errors == []


@pytest.mark.parametrize("tab", ["page", "phone_page"])
def test_the_billing_page_shows_the_balance_and_credits_go_through_checkout(
    live_portal, owner, tab, request
):
    page = request.getfixturevalue(tab)
    live_portal.sign_in(page, owner.user)
    before = ledger.balance_micros(owner.tenant)

    live_portal.goto(page, "/billing/")
    assert page.locator(".balance").inner_text() == f"${before / 1_000_000:.2f}"
    assert _chart_drawn(page, "usage-chart")
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
    page.fill("#topup_amount_usd", "20")
    page.check("#add-credits input[value=pix]")
    page.click("#add-credits button[type=submit]")

    page.wait_for_url(f"{live_portal.stripe_url}/**")
    assert "R$" in page.content() or "brl" in page.content().lower()
    page.click("button[value=pay]")
    page.wait_for_url(f"{live_portal.url}/billing/?checkout=success")
    expected = f"${(before + 20_000_000) / 1_000_000:.2f}"

    def balance_shown() -> bool:
        live_portal.goto(page, "/billing/")
        return page.locator(".balance").inner_text() == expected

    wait_until(balance_shown, timeout=30, every=0.5)
    assert page.console_errors == []


def test_the_language_switcher_turns_the_page_portuguese(live_portal, owner, phone_page):
    page = phone_page
    live_portal.sign_in(page, owner.user)
    live_portal.goto(page, "/billing/")
    assert page.get_attribute("html", "lang") == "en"

    with page.expect_navigation():
        page.select_option("select[name=language]", "pt-br")

    page.wait_for_load_state("networkidle")
    assert page.get_attribute("html", "lang") == "pt-br"
    assert page.url.endswith("/billing/")
    assert page.console_errors == []
