"""Support staff see endpoints and deliveries in the admin, and can resend a delivery."""

import pytest
from django.urls import reverse

from accounts.models import AuditLog
from accounts.tests.factories import UserFactory
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import emit
from webhooks.tests.factories import make_endpoint


@pytest.fixture
def staff(client):
    user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(user)
    return client, user


@pytest.fixture
def delivery(owner):
    make_endpoint(owner.tenant, events=["instance.running"])
    (delivery,) = emit(owner.tenant, "instance.running", {"instance": {"id": 1}})
    return delivery


def _url(model, view: str, *args) -> str:
    return reverse(f"admin:webhooks_{model._meta.model_name}_{view}", args=args)


@pytest.mark.django_db
def test_endpoint_and_delivery_pages_render_without_the_secret(staff, delivery):
    client, _ = staff
    endpoint = delivery.endpoint

    pages = [
        client.get(_url(WebhookEndpoint, "changelist"), {"is_active__exact": "1"}),
        client.get(_url(WebhookEndpoint, "change", endpoint.pk)),
        client.get(_url(WebhookDelivery, "changelist"), {"status": "pending"}),
        client.get(_url(WebhookDelivery, "change", delivery.pk)),
    ]

    assert [page.status_code for page in pages] == [200] * 4
    assert endpoint.url in pages[0].content.decode()
    assert endpoint.secret_prefix in pages[1].content.decode()
    assert all(endpoint.secret not in page.content.decode() for page in pages)


@pytest.mark.django_db
def test_the_redeliver_action_queues_the_same_event_and_is_audited(staff, delivery):
    client, user = staff

    response = client.post(
        _url(WebhookDelivery, "changelist"),
        {"action": "redeliver", "_selected_action": [delivery.pk]},
    )

    assert response.status_code == 302
    resent = WebhookDelivery.objects.exclude(pk=delivery.pk).get()
    assert resent.event_id == delivery.event_id
    entry = AuditLog.objects.get(action=AuditLog.Action.WEBHOOK_REDELIVERED)
    assert entry.actor == user
    assert entry.tenant == delivery.tenant
    assert entry.metadata["by_staff"] is True
