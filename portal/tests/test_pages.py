"""The portal's frame: sign-in wall, tenant scoping, HTML errors beside JSON ones, languages."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(owner) -> Client:
    client = Client()
    client.force_login(owner.user)
    return client


def test_a_visitor_is_sent_to_sign_in():
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_dashboard_shows_the_signed_in_user(browser, owner):
    page = browser.get("/").content.decode()
    assert owner.user.email in page
    assert 'data-live="on"' in page  # the page opens the tenant websocket


def test_an_unknown_page_is_html_and_an_unknown_api_route_is_json(browser):
    page = browser.get("/no-such-page/")
    assert page.status_code == 404
    assert page["Content-Type"].startswith("text/html")
    api = browser.get("/api/no-such-route")
    assert api.status_code == 404
    assert api.json()["code"] == "not_found"


def test_the_language_switcher_turns_the_portal_portuguese(browser):
    browser.post("/i18n/setlang/", {"language": "pt-br", "next": "/"})
    page = browser.get("/").content.decode()
    assert '<html lang="pt-br"' in page
    assert 'value="pt-br" selected' in page
