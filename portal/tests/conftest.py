"""The portal's test fixtures: market data, and the real-browser ones (portal/tests/browser.py)."""

from portal.tests.browser import (  # noqa: F401 (fixtures)
    chromium,
    collected_static,
    live_portal,
    live_portal_environment,
    page,
    phone_page,
    skip_without_browser,
)
from portal.tests.market_data import market  # noqa: F401 (a fixture)


def pytest_collection_modifyitems(config, items):
    skip_without_browser(items)
