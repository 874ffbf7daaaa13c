"""The market page: price history with the forecast band, availability by region, the
safe-windows heatmap and the savings calculator, on a real slice of price history."""

import json
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from spot import clouds, prices, risk
from spot.catalog import find_gpu

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def browser(owner) -> Client:
    client = Client()
    client.force_login(owner.user)
    return client


def _chart(page: str) -> dict:
    found = re.search(r'<script id="market-chart" type="application/json">(.*?)</script>', page)
    assert found, "the page carries no chart data"
    return json.loads(found.group(1))


def test_a_visitor_is_sent_to_sign_in():
    response = Client().get("/market/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_price_history_is_charted_with_the_forecast_band(browser, market):
    response = browser.get("/market/?gpu=H100&days=7")

    page = response.content.decode()
    assert response.status_code == 200
    assert 'id="price-chart"' in page and "chart.umd.min.js" in page
    assert 'aria-current="page">Market' in page
    assert '<option value="7" selected>' in browser.get("/market/").content.decode()
    chart = _chart(page)
    expected = prices.hourly_points("H100", market - timedelta(days=7), market + timedelta(hours=1))
    assert [row[1] for row in chart["history"]] == [round(price, 4) for _, price in expected]
    start, *ahead = chart["forecast"]
    assert start[0] == chart["history"][-1][0]  # the band starts at the last known price
    assert [row[0] - start[0] for row in ahead] == [3_600_000, 6 * 3_600_000, 24 * 3_600_000]
    for _, price, low, high in ahead:
        assert low <= price <= high
    assert page.count('<th scope="row">1h</th>') == 1 and "24h</th>" in page


def test_the_chart_follows_the_chosen_region(browser, market):
    page = browser.get("/market/?gpu=H100&region=EU-West").content.decode()

    chart = _chart(page)
    assert [row[1] for row in chart["history"]] == [1.9]  # only the live EU-West sample
    assert chart["forecast"] == []  # an hour of history is too short to forecast
    assert "Not enough price history to forecast" in page
    assert "$1.9000" in page  # the region's price now


def test_availability_lists_machines_free_per_region_and_the_best_price(browser, market):
    page = browser.get("/market/?gpu=H100").content.decode()

    section = page.split('id="availability"')[1].split("</section>")[0]
    assert "US-East" in section and "EU-West" in section
    assert re.search(r"EU-West <mark>best price</mark>", section)
    assert "<td>9</td>" in section  # 7 + 2 machines in all


def test_the_safe_windows_heatmap_colours_the_week_and_marks_the_risky_window(browser, market):
    busy = (market - timedelta(days=7)).replace(hour=15)
    for minutes in range(0, 50, 10):
        risk.record("H100", "US-East", "sim", busy + timedelta(minutes=minutes))

    page = browser.get("/market/?gpu=H100").content.decode()

    table = page.split('class="heatmap"')[1].split("</table>")[0]
    day_row = r"<tr>\s*<th scope=\"row\"><abbr title=\"(\w+)\">.*?</th>(.*?)</tr>"
    rows = re.findall(day_row, table, re.S)
    assert [day for day, _ in rows] == [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ]
    hues = {day: re.findall(r"data-hue=\"(\d+)\"", cells) for day, cells in rows}
    assert all(len(day_hues) == 4 for day_hues in hues.values())
    assert hues[busy.strftime("%A")][2] == "0"  # 12:00-18:00 that day: the riskiest (red)
    assert "5 interruptions seen" in page


def test_the_savings_calculator_answers_htmx_with_a_partial(browser, market):
    response = browser.get("/market/savings/?gpu=H100&hours=100", **HTMX)

    page = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in page  # a partial, swapped into the page
    expected = clouds.savings(find_gpu("H100"), 100, prices.current_micros("H100", timezone.now()))
    assert f'data-cost="dumont">${expected["cost_dumont"]:.2f}' in page
    assert f'data-cost="aws">${expected["cost_aws"]:.2f}' in page
    assert "not in our reference prices" in page  # Azure: never invented


def test_the_savings_form_without_javascript_lands_on_the_whole_page(browser, market):
    response = browser.get("/market/savings/?gpu=H100&hours=10")

    assert response.status_code == 302
    page = browser.get(response["Location"]).content.decode()
    assert "10 hours of H100" in page


@pytest.mark.parametrize(
    "query",
    ["gpu=GTX9999", "gpu=H100&days=abc", "gpu=H100&region=Mars", "gpu=H100&hours=x"],
)
def test_bad_choices_show_a_message_not_an_error(browser, market, query):
    response = browser.get(f"/market/?{query}")

    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()


@pytest.mark.parametrize("query", ["gpu=H100&hours=-1", "gpu=GTX9999&hours=5", "gpu=H100"])
def test_bad_savings_input_shows_the_field_errors(browser, market, query):
    response = browser.get(f"/market/savings/?{query}", **HTMX)

    assert response.status_code == 200
    assert 'class="field-errors"' in response.content.decode()


def test_a_gpu_without_market_data_says_so(browser, market):
    page = browser.get("/market/?gpu=RTX+3060&hours=5").content.decode()

    assert "No price history for this GPU and region yet" in page
    assert "No live offers for this GPU" in page
    assert "No market price for RTX 3060 yet" in page
