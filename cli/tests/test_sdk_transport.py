"""Retries and error decoding, against a real local HTTP server that answers what we script."""

import time

import pytest
from typer.testing import CliRunner
from werkzeug import Response

from conftest import free_port
from dumont_client import APIConnectionError, Client, RateLimited, ServerError
from dumont_client.cli import app


@pytest.fixture
def client(httpserver):
    with Client(api_key="dmt_test", base_url=httpserver.url_for("/"), max_retries=3) as client:
        yield client


BALANCE = {"balance_micro_usd": 1_500_000, "balance_usd": "1.50", "currency": "USD"}


def test_a_429_is_retried_after_the_retry_after_it_asks_for(client, httpserver):
    httpserver.expect_ordered_request("/api/billing/balance").respond_with_json(
        {"code": "throttled", "detail": "Slow down."}, status=429, headers={"Retry-After": "1"}
    )
    httpserver.expect_ordered_request("/api/billing/balance").respond_with_json(BALANCE)
    started = time.monotonic()

    balance = client.billing.balance()

    assert balance.balance_usd == "1.50"
    assert len(httpserver.log) == 2
    assert time.monotonic() - started >= 1
    assert httpserver.log[1][0].headers["Authorization"] == "Bearer dmt_test"


def test_a_long_retry_after_is_capped(httpserver):
    httpserver.expect_ordered_request("/api/billing/balance").respond_with_json(
        {"code": "throttled", "detail": "Slow down."}, status=429, headers={"Retry-After": "3600"}
    )
    httpserver.expect_ordered_request("/api/billing/balance").respond_with_json(BALANCE)
    client = Client(
        api_key="dmt_test", base_url=httpserver.url_for("/"), max_retry_wait_seconds=0.1
    )
    started = time.monotonic()

    client.billing.balance()

    assert time.monotonic() - started < 5


def test_gets_are_retried_through_gateway_errors(client, httpserver):
    for status in (502, 503, 504):
        httpserver.expect_ordered_request("/api/billing/balance").respond_with_data(
            "bad gateway", status=status
        )
    httpserver.expect_ordered_request("/api/billing/balance").respond_with_json(BALANCE)

    assert client.billing.balance().balance_micro_usd == 1_500_000
    assert len(httpserver.log) == 4


def test_a_post_that_may_have_run_is_not_sent_twice(client, httpserver):
    httpserver.expect_request("/api/instances", method="POST").respond_with_json(
        {"code": "provider_unavailable", "detail": "The market does not answer."}, status=503
    )

    with pytest.raises(ServerError) as raised:
        client.instances.create(gpu="RTX 4090", max_price=1)

    assert (raised.value.status_code, raised.value.code) == (503, "provider_unavailable")
    assert len(httpserver.log) == 1


def test_a_post_refused_with_429_is_sent_again(client, httpserver):
    httpserver.expect_ordered_request("/api/webhooks/7/ping", method="POST").respond_with_json(
        {"code": "throttled", "detail": "Slow down."}, status=429, headers={"Retry-After": "0"}
    )
    httpserver.expect_ordered_request("/api/webhooks/7/ping", method="POST").respond_with_json(
        {"delivery": 1}, status=202
    )

    assert client.webhooks.ping(7) == {"delivery": 1}
    assert len(httpserver.log) == 2


def test_retries_give_up_with_the_last_answer(httpserver):
    httpserver.expect_request("/api/billing/balance").respond_with_json(
        {"code": "throttled", "detail": "Slow down.", "retry_after_seconds": 0},
        status=429,
        headers={"Retry-After": "0"},
    )
    client = Client(api_key="dmt_test", base_url=httpserver.url_for("/"), max_retries=2)

    with pytest.raises(RateLimited):
        client.billing.balance()

    assert len(httpserver.log) == 3


def test_an_answer_that_is_not_json_still_makes_one_error_line(httpserver, monkeypatch):
    httpserver.expect_request("/api/instances").respond_with_response(
        Response("<html>\n<h1>Teapot</h1>\n</html>", status=418, content_type="text/html")
    )
    monkeypatch.setenv("DUMONT_API_URL", httpserver.url_for("/"))
    monkeypatch.setenv("DUMONT_API_KEY", "dmt_test")

    result = CliRunner().invoke(app, ["list"])

    assert result.exit_code == 1
    assert result.stderr == "error: http_418: I'M A TEAPOT\n"


def test_an_unreachable_api_is_a_connection_error():
    client = Client(api_key="dmt_test", base_url=f"http://127.0.0.1:{free_port()}", max_retries=1)

    with pytest.raises(APIConnectionError) as raised:
        client.billing.balance()

    assert raised.value.code == "connection_error"
    assert raised.value.status_code is None
