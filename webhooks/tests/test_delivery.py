"""Deliveries reach a real local receiver signed, are retried with backoff, and then given up."""

import hashlib
import hmac
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import time_machine
from django.db import connections, transaction
from django.utils import timezone
from werkzeug import Response

from webhooks.delivery import BACKOFF_SECONDS, MAX_ATTEMPTS, attempt_delivery
from webhooks.models import WebhookDelivery
from webhooks.services import emit
from webhooks.signing import verify
from webhooks.tasks import sweep_deliveries
from webhooks.tests.factories import make_delivery, make_endpoint, receiver_url

pytestmark = pytest.mark.usefixtures("allow_loopback", "tasks_run_here")


@pytest.fixture
def endpoint(owner, httpserver):
    return make_endpoint(owner.tenant, receiver_url(httpserver), events=["instance.running"])


@pytest.fixture
def emit_committed(django_capture_on_commit_callbacks):
    """emit() in a transaction that commits, running what it queued after commit."""

    def run(tenant, event="instance.running", data=None):
        with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
            return emit(tenant, event, data or {"instance": {"id": 7, "status": "running"}})

    return run


def _sweep_at(moment) -> WebhookDelivery:
    with time_machine.travel(moment, tick=False):
        sweep_deliveries()
    return WebhookDelivery.objects.get()


@pytest.mark.django_db
def test_the_receiver_gets_a_signed_event_it_can_verify(
    owner, endpoint, httpserver, emit_committed
):
    httpserver.expect_request("/hook", method="POST").respond_with_data("thanks")

    (delivery,) = emit_committed(owner.tenant)

    (request, _), *_ = httpserver.log
    raw_body = request.get_data()
    header = request.headers["Dumont-Signature"]
    timestamp = header.split(",")[0].removeprefix("t=")
    independent = hmac.new(
        endpoint.secret.encode(), f"{timestamp}.".encode() + raw_body, hashlib.sha256
    ).hexdigest()
    assert verify(endpoint.secret, raw_body, header)
    assert header == f"t={timestamp},v1={independent}"
    assert abs(int(timestamp) - time.time()) < 60
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == "Dumont-Webhooks/1"
    assert request.headers["Dumont-Event"] == "instance.running"
    assert request.headers["Dumont-Delivery"] == str(delivery.pk)
    assert request.headers["Host"] == f"127.0.0.1:{httpserver.port}"
    body = json.loads(raw_body)
    assert body == {
        "id": str(delivery.event_id),
        "type": "instance.running",
        "created_at": body["created_at"],
        "tenant": owner.tenant.pk,
        "data": {"instance": {"id": 7, "status": "running"}},
    }
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED
    assert delivery.attempt_count == 1
    assert delivery.response_status_code == 200
    assert delivery.response_body_excerpt == "thanks"
    assert delivery.delivered_at is not None
    assert delivery.next_attempt_at is None


@pytest.mark.django_db
def test_a_receiver_answering_500_then_200_gets_the_event_on_the_retry(
    owner, endpoint, httpserver, emit_committed
):
    httpserver.expect_oneshot_request("/hook").respond_with_data("boom", status=500)
    httpserver.expect_request("/hook").respond_with_data("ok", status=200)
    (delivery,) = emit_committed(owner.tenant)
    delivery.refresh_from_db()
    failed_at = delivery.last_attempt_at

    not_yet = _sweep_at(failed_at + timedelta(seconds=BACKOFF_SECONDS[0] - 5))
    retried = _sweep_at(failed_at + timedelta(seconds=BACKOFF_SECONDS[0] + 5))

    assert not_yet.attempt_count == 1
    assert retried.status == WebhookDelivery.Status.SUCCEEDED
    assert retried.attempt_count == 2
    assert len(httpserver.log) == 2
    first, second = (json.loads(request.get_data()) for request, _ in httpserver.log)
    assert first["id"] == second["id"] == str(delivery.event_id)
    assert [response.status_code for _, response in httpserver.log] == [500, 200]


@pytest.mark.django_db
def test_a_receiver_that_always_fails_is_given_up_on_after_about_a_day(
    owner, endpoint, httpserver, emit_committed
):
    httpserver.expect_request("/hook").respond_with_data("down", status=503)
    (delivery,) = emit_committed(owner.tenant)
    delivery.refresh_from_db()
    first_attempt_at = delivery.last_attempt_at

    while delivery.status == WebhookDelivery.Status.PENDING:
        delivery = _sweep_at(delivery.next_attempt_at + timedelta(seconds=1))
    later = _sweep_at(timezone.now() + timedelta(days=3))

    assert delivery.status == WebhookDelivery.Status.FAILED
    assert delivery.attempt_count == MAX_ATTEMPTS == 9
    assert len(httpserver.log) == 9
    elapsed = delivery.last_attempt_at - first_attempt_at
    assert timedelta(hours=22) < elapsed < timedelta(hours=24)
    assert delivery.last_error == "The endpoint answered HTTP 503."
    assert delivery.next_attempt_at is None
    assert later.attempt_count == 9


@pytest.mark.django_db
def test_a_redirect_is_not_followed_and_counts_as_a_failure(
    owner, endpoint, httpserver, emit_committed
):
    target = receiver_url(httpserver, "/elsewhere")
    httpserver.expect_request("/hook").respond_with_response(
        Response(status=302, headers={"Location": target})
    )

    emit_committed(owner.tenant)

    delivery = WebhookDelivery.objects.get()
    assert len(httpserver.log) == 1
    assert delivery.status == WebhookDelivery.Status.PENDING
    assert delivery.response_status_code == 302
    assert "Redirects are not followed" in delivery.last_error


@pytest.mark.django_db
def test_a_receiver_slower_than_the_timeout_counts_as_a_failure(
    owner, endpoint, httpserver, emit_committed, settings
):
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.3

    def slow(request):
        time.sleep(1)
        return Response("late")

    httpserver.expect_request("/hook").respond_with_handler(slow)

    emit_committed(owner.tenant)

    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDelivery.Status.PENDING
    assert delivery.response_status_code is None
    assert delivery.last_error.startswith("ReadTimeout")


@pytest.mark.django_db
def test_only_the_start_of_a_long_response_is_kept(owner, endpoint, httpserver, emit_committed):
    httpserver.expect_request("/hook").respond_with_data("x" * 100_000 + "\x00")

    emit_committed(owner.tenant)

    assert len(WebhookDelivery.objects.get().response_body_excerpt) == 1024


@pytest.mark.django_db
def test_a_first_attempt_whose_task_was_lost_is_sent_by_the_sweep(owner, endpoint, httpserver):
    httpserver.expect_request("/hook").respond_with_data("ok")
    delivery = make_delivery(endpoint)  # written, but its task never ran

    too_soon = _sweep_at(delivery.next_attempt_at + timedelta(seconds=10))
    swept = _sweep_at(delivery.next_attempt_at + timedelta(seconds=61))

    assert too_soon.attempt_count == 0
    assert swept.status == WebhookDelivery.Status.SUCCEEDED
    assert len(httpserver.log) == 1


@pytest.mark.django_db
def test_disabling_an_endpoint_stops_its_pending_retries(
    owner, endpoint, httpserver, emit_committed
):
    httpserver.expect_request("/hook").respond_with_data("down", status=500)
    (delivery,) = emit_committed(owner.tenant)
    endpoint.is_active = False
    endpoint.save()
    delivery.refresh_from_db()

    stopped = _sweep_at(delivery.next_attempt_at + timedelta(seconds=1))

    assert stopped.status == WebhookDelivery.Status.FAILED
    assert stopped.last_error == "The endpoint was disabled."
    assert len(httpserver.log) == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_handed_the_same_delivery_send_it_once(owner, httpserver):
    def slow_ok(request):
        time.sleep(0.5)
        return Response("ok")

    httpserver.expect_request("/hook").respond_with_handler(slow_ok)
    delivery = make_delivery(make_endpoint(owner.tenant, receiver_url(httpserver)))

    def worker(_):
        try:
            return attempt_delivery(owner.tenant.pk, delivery.pk)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(worker, range(2)))

    assert len(httpserver.log) == 1
    assert sorted(result is None for result in results) == [False, True]
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED
    assert delivery.attempt_count == 1


@pytest.mark.django_db
def test_a_host_name_is_connected_to_by_its_checked_address_and_keeps_its_host_header(
    owner, httpserver, emit_committed, settings
):
    settings.WEBHOOK_ALLOWED_HOSTS = ["localhost"]
    url = f"http://localhost:{httpserver.port}/hook"
    make_endpoint(owner.tenant, url, events=["instance.running"])
    httpserver.expect_request("/hook").respond_with_data("ok")

    emit_committed(owner.tenant)

    (request, _), *_ = httpserver.log
    assert request.headers["Host"] == f"localhost:{httpserver.port}"
    assert WebhookDelivery.objects.get().status == WebhookDelivery.Status.SUCCEEDED
