"""Small builders for webhook tests."""

from django.utils import timezone

from accounts.models import Tenant
from webhooks.events import EVENTS
from webhooks.models import WebhookDelivery, WebhookEndpoint


def make_endpoint(
    tenant: Tenant, url: str = "https://hooks.example.com/dumont", events=EVENTS, **fields
) -> WebhookEndpoint:
    """An endpoint saved directly (the URL is not checked: tests choose where it points)."""
    return WebhookEndpoint.objects.create(tenant=tenant, url=url, events=list(events), **fields)


def make_delivery(endpoint: WebhookEndpoint, event: str = "instance.running") -> WebhookDelivery:
    """A due first attempt, as emit writes it, without queueing a task."""
    payload = {"id": "", "type": event, "created_at": "", "tenant": endpoint.tenant_id, "data": {}}
    delivery = WebhookDelivery.objects.create(
        tenant_id=endpoint.tenant_id,
        endpoint=endpoint,
        event=event,
        payload=payload,
        next_attempt_at=timezone.now(),
    )
    delivery.payload["id"] = str(delivery.event_id)
    delivery.save(update_fields=["payload"])
    return delivery


def receiver_url(httpserver, path: str = "/hook") -> str:
    return f"http://127.0.0.1:{httpserver.port}{path}"
