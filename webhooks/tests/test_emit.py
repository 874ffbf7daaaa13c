"""emit(): one outbox row per subscribed, active endpoint, sent only if the transaction commits."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import transaction

from webhooks.events import EVENTS
from webhooks.exceptions import UnknownEvent
from webhooks.models import WebhookDelivery
from webhooks.services import emit
from webhooks.tests.factories import make_endpoint


@pytest.mark.django_db
def test_each_active_subscribed_endpoint_of_the_tenant_gets_one_delivery(two_tenants):
    a, b = two_tenants
    first = make_endpoint(a.tenant, events=["instance.running", "instance.deleted"])
    second = make_endpoint(a.tenant, events=["instance.running"])
    make_endpoint(a.tenant, events=["instance.deleted"])
    make_endpoint(a.tenant, events=["instance.running"], is_active=False)
    make_endpoint(b.tenant, events=["instance.running"])

    deliveries = emit(a.tenant, "instance.running", {"instance": {"id": 3}})

    assert {delivery.endpoint_id for delivery in deliveries} == {first.pk, second.pk}
    assert WebhookDelivery.objects.count() == 2
    assert len({delivery.event_id for delivery in deliveries}) == 1
    assert all(delivery.status == WebhookDelivery.Status.PENDING for delivery in deliveries)


@pytest.mark.django_db
def test_an_event_nobody_subscribes_to_writes_nothing(owner):
    make_endpoint(owner.tenant, events=["balance.low"])

    assert emit(owner.tenant, "price.alert", {"gpu": "RTX 4090"}) == []
    assert not WebhookDelivery.objects.exists()


@pytest.mark.django_db
def test_a_rolled_back_transaction_leaves_no_delivery_and_queues_nothing(
    owner, django_capture_on_commit_callbacks
):
    make_endpoint(owner.tenant)

    with (
        django_capture_on_commit_callbacks(execute=True) as queued,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        emit(owner.tenant, "instance.created", {"instance": {"id": 1}})
        raise RuntimeError("the transition failed after emitting")

    assert not WebhookDelivery.objects.exists()
    assert queued == []


@pytest.mark.django_db
def test_a_committed_emit_queues_one_task_per_delivery(owner, django_capture_on_commit_callbacks):
    make_endpoint(owner.tenant)
    make_endpoint(owner.tenant)

    with django_capture_on_commit_callbacks() as queued, transaction.atomic():
        emit(owner.tenant, "instance.created", {"instance": {"id": 1}})

    assert len(queued) == 2


@pytest.mark.django_db
def test_the_payload_is_the_envelope_with_json_friendly_data(owner):
    make_endpoint(owner.tenant)
    started_at = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

    (delivery,) = emit(
        owner.tenant,
        "instance.running",
        {"instance": {"id": 9, "started_at": started_at, "price": Decimal("0.35")}},
    )

    delivery.refresh_from_db()
    assert delivery.payload == {
        "id": str(delivery.event_id),
        "type": "instance.running",
        "created_at": delivery.payload["created_at"],
        "tenant": owner.tenant.pk,
        "data": {"instance": {"id": 9, "started_at": "2026-05-01T12:00:00Z", "price": "0.35"}},
    }


@pytest.mark.django_db
def test_an_event_outside_the_catalog_is_refused(owner):
    make_endpoint(owner.tenant)

    with pytest.raises(UnknownEvent):
        emit(owner.tenant, "instance.exploded", {})

    assert not WebhookDelivery.objects.exists()


def test_the_catalog_names_every_event_the_issues_promise():
    assert set(EVENTS) == {
        "instance.created",
        "instance.running",
        "instance.hibernated",
        "snapshot.failed",
        "snapshot.restored",
        "instance.deleted",
        "instance.failover_triggered",
        "snapshot.completed",
        "balance.low",
        "budget.threshold",
        "price.alert",
        "price.changed",
    }
