"""Instance transitions reach customers' webhook endpoints, signed, through the outbox."""

import json

import pytest
from django.db import transaction
from pytest_httpserver import HTTPServer

from instances.models import Instance
from instances.tests.factories import InstanceFactory
from instances.transitions import transition
from webhooks.models import WebhookDelivery
from webhooks.signing import verify
from webhooks.tasks import deliver_webhook

pytestmark = pytest.mark.django_db
Status = Instance.Status
EVENTS = [
    "instance.created",
    "instance.running",
    "instance.hibernated",
    "instance.deleted",
    "instance.failover_triggered",
]


@pytest.fixture
def endpoint(owner, httpserver: HTTPServer, settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    httpserver.expect_request("/hooks").respond_with_data("ok")
    response = owner.client.post(
        "/api/webhooks", {"url": httpserver.url_for("/hooks"), "events": EVENTS}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def _deliver_all() -> None:
    for delivery in WebhookDelivery.objects.filter(status="pending").order_by("id"):
        deliver_webhook(delivery.tenant_id, delivery.pk)


def test_each_transition_a_customer_subscribed_to_is_delivered_signed(
    owner, endpoint, httpserver, simulator
):
    created = owner.client.post(
        "/api/instances", {"gpu": "RTX 4090", "max_price": 2}, format="json"
    ).json()
    instance = Instance.objects.get(pk=created["id"])
    for status in [
        Status.PROVISIONING,
        Status.RUNNING,
        Status.HIBERNATING,
        Status.HIBERNATED,
        Status.DELETING,
        Status.DELETED,
    ]:
        transition(instance, status)

    _deliver_all()

    bodies = []
    for request, _ in httpserver.log:
        assert verify(endpoint["secret"], request.data, request.headers["Dumont-Signature"])
        bodies.append(json.loads(request.data))
    assert [body["type"] for body in bodies] == [
        "instance.created",
        "instance.running",
        "instance.hibernated",
        "instance.deleted",
    ]
    assert {body["data"]["instance"]["id"] for body in bodies} == {instance.pk}
    assert bodies[1]["data"]["from_status"] == "provisioning"


def test_a_transition_rolled_back_leaves_no_webhook(owner, endpoint):
    instance = InstanceFactory(tenant=owner.tenant, status=Status.RUNNING)

    with pytest.raises(RuntimeError), transaction.atomic():
        transition(instance, Status.FAILING_OVER)
        raise RuntimeError("the failover step crashed")

    assert not WebhookDelivery.objects.exists()
    instance.refresh_from_db()
    assert instance.status == Status.RUNNING


def test_another_tenants_endpoint_hears_nothing(two_tenants, httpserver, settings):
    a, b = two_tenants
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    b.client.post(
        "/api/webhooks", {"url": httpserver.url_for("/b"), "events": EVENTS}, format="json"
    )
    instance = InstanceFactory(tenant=a.tenant, status=Status.RUNNING)

    transition(instance, Status.FAILING_OVER)

    assert not WebhookDelivery.objects.exists()
