"""End to end: a real `celery worker` process delivers an event once its transaction commits."""

import time

import pytest
from django.db import transaction

from conftest import worker_arguments
from webhooks.models import WebhookDelivery
from webhooks.services import emit
from webhooks.signing import verify
from webhooks.tests.factories import make_endpoint, receiver_url

pytestmark = pytest.mark.django_db(transaction=True)


def _wait_for(predicate, timeout_seconds: float = 60):
    deadline = time.monotonic() + timeout_seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_an_emitted_event_reaches_the_receiver_through_a_worker_after_commit(
    owner, httpserver, start_process, test_database_url
):
    httpserver.expect_request("/hook").respond_with_data("ok")
    endpoint = make_endpoint(owner.tenant, receiver_url(httpserver), events=["instance.running"])
    start_process(
        *worker_arguments(),
        env={"DATABASE_URL": test_database_url, "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1"},
    )

    with transaction.atomic():
        (delivery,) = emit(owner.tenant, "instance.running", {"instance": {"id": 11}})
        time.sleep(0.5)
        sent_before_commit = len(httpserver.log)
    _wait_for(lambda: httpserver.log)
    _wait_for(
        lambda: (
            WebhookDelivery.objects.get(pk=delivery.pk).status == WebhookDelivery.Status.SUCCEEDED
        )
    )

    assert sent_before_commit == 0
    (request, _), *_ = httpserver.log
    assert verify(endpoint.secret, request.get_data(), request.headers["Dumont-Signature"])
    assert request.headers["Dumont-Delivery"] == str(delivery.pk)


def test_beat_schedules_the_sweep_every_thirty_seconds_by_default(settings):
    from dumont.celery import app

    app.loader.import_default_modules()
    entry = settings.CELERY_BEAT_SCHEDULE["sweep-webhook-deliveries"]

    assert entry["task"] in app.tasks
    assert entry["schedule"] == 30.0
