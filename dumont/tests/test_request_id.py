"""Every request has an id: taken from X-Request-ID or made, returned, on its log lines and on
the log lines of the Celery tasks it queues (in a real worker process)."""

import json
import logging

import pytest
from pythonjsonlogger.json import JsonFormatter

from conftest import wait_until
from dumont.logs import ContextFilter, logging_config
from webhooks.models import WebhookDelivery
from webhooks.tests.factories import make_endpoint, receiver_url


class _Collect(logging.Handler):
    """A root handler with the production filter: what the console handler would be given."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.addFilter(ContextFilter())
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def log_records():
    handler = _Collect()
    logging.getLogger().addHandler(handler)
    yield handler.records
    logging.getLogger().removeHandler(handler)


@pytest.mark.django_db
def test_a_request_without_an_id_gets_a_new_one_in_its_response(anonymous):
    first = anonymous.get("/api/health/live")
    second = anonymous.get("/api/health/live")

    assert len(first["X-Request-ID"]) == 32
    assert first["X-Request-ID"] != second["X-Request-ID"]


@pytest.mark.django_db
def test_a_valid_incoming_request_id_is_kept(anonymous):
    response = anonymous.get("/api/health/live", HTTP_X_REQUEST_ID="Root=1-67891233-abcdef012345")

    assert response["X-Request-ID"] == "Root=1-67891233-abcdef012345"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "incoming", ["has space", "x" * 200, "line\nbreak", '"quoted"', "-leading-dash", ""]
)
def test_an_invalid_incoming_request_id_is_replaced(anonymous, incoming):
    response = anonymous.get("/api/health/live", HTTP_X_REQUEST_ID=incoming)

    assert response.status_code == 200
    assert response["X-Request-ID"] != incoming
    assert len(response["X-Request-ID"]) == 32


@pytest.mark.django_db
def test_log_lines_written_during_a_request_carry_its_id(owner, log_records):
    response = owner.client.get("/api/instances/i-nowhere", HTTP_X_REQUEST_ID="req-404-lines")
    logging.getLogger("dumont.tests").warning("after the request")

    assert response.status_code == 404
    during = [record for record in log_records if record.name == "django.request"]
    assert during, "Django logs a 404 on django.request"
    assert {record.request_id for record in during} == {"req-404-lines"}
    (after,) = [record for record in log_records if record.name == "dumont.tests"]
    assert not hasattr(after, "request_id")


def test_json_lines_name_the_request_and_plain_lines_show_a_dash():
    record = logging.LogRecord("dumont.x", logging.INFO, __file__, 1, "hello %s", ("ada",), None)
    record.request_id = "req-json"
    config = logging_config("json", "INFO")["formatters"]["default"]
    assert config.pop("()") == "pythonjsonlogger.json.JsonFormatter"
    formatter = JsonFormatter(**config)
    plain = logging_config("plain", "INFO")["formatters"]["default"]
    plain_formatter = logging.Formatter(plain["fmt"], defaults=plain["defaults"])
    bare = logging.LogRecord("dumont.x", logging.INFO, __file__, 1, "bare", (), None)

    line = json.loads(formatter.format(record))

    assert line["message"] == "hello ada"
    assert line["request_id"] == "req-json"
    assert line["level"] == "INFO"
    assert line["logger"] == "dumont.x"
    assert "[-] bare" in plain_formatter.format(bare)


def _json_lines(path):
    lines = []
    for text in path.read_text().splitlines():
        try:
            lines.append(json.loads(text))
        except ValueError:
            continue  # the worker's start-up banner is not a log record
    return lines


def test_a_task_queued_by_a_request_logs_with_that_request_id_in_a_real_worker(
    owner, httpserver, start_process, test_database_url, tmp_path
):
    httpserver.expect_request("/hook").respond_with_data("ok")
    endpoint = make_endpoint(owner.tenant, receiver_url(httpserver), events=["instance.running"])
    worker_log = tmp_path / "worker.log"
    start_process(
        "-m",
        "celery",
        "-A",
        "dumont",
        "worker",
        "--pool",
        "solo",
        "--without-mingle",
        "--without-gossip",
        "--loglevel",
        "INFO",
        env={
            "DATABASE_URL": test_database_url,
            "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
            "LOG_FORMAT": "json",
        },
        output=worker_log,
    )

    response = owner.client.post(
        f"/api/webhooks/{endpoint.pk}/ping", HTTP_X_REQUEST_ID="req-ping-42"
    )
    wait_until(
        lambda: WebhookDelivery.objects.filter(
            endpoint=endpoint, status=WebhookDelivery.Status.SUCCEEDED
        ).exists(),
        timeout=60,
    )
    wait_until(
        lambda: any("succeeded" in line["message"] for line in _json_lines(worker_log)),
        timeout=30,
    )

    assert response.status_code == 202
    assert response["X-Request-ID"] == "req-ping-42"
    task_lines = [line for line in _json_lines(worker_log) if line.get("task_id")]
    assert task_lines, worker_log.read_text()
    assert {line["request_id"] for line in task_lines} == {"req-ping-42"}
    assert {line["task_name"] for line in task_lines} == {"webhooks.deliver"}
    assert any("succeeded" in line["message"] for line in task_lines)
