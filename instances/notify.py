"""What a transition tells the outside: the tenant's websockets and customer webhooks."""

from dumont.live import push_after_commit
from instances.models import Instance, InstanceEvent
from webhooks.services import emit

Status = Instance.Status

# The webhook event a customer subscribes to for reaching each status.
WEBHOOK_EVENTS = {
    Status.PENDING: "instance.created",
    Status.RUNNING: "instance.running",
    Status.HIBERNATED: "instance.hibernated",
    Status.DELETED: "instance.deleted",
    Status.FAILING_OVER: "instance.failover_triggered",
}
LIVE_EVENT = "instance.status"


def event_payload(instance: Instance, event: InstanceEvent) -> dict:
    """The body both the websocket message and the webhook carry."""
    return {
        "instance": {
            "id": instance.id,
            "name": instance.name,
            "gpu": instance.gpu,
            "gpu_count": instance.gpu_count,
            "region": instance.region or None,
            "status": instance.status,
            "status_reason": instance.status_reason,
        },
        "from_status": event.from_status or None,
        "to_status": event.to_status,
        "reason": event.reason,
        "actor": event.actor,
        "at": event.created_at.isoformat(),
    }


def transition_recorded(instance: Instance, event: InstanceEvent) -> None:
    """Inside the transition's transaction: write webhook outbox rows, push live after commit."""
    payload = event_payload(instance, event)
    webhook_event = WEBHOOK_EVENTS.get(event.to_status)
    if webhook_event:
        emit(instance.tenant, webhook_event, payload)
    push_after_commit(instance.tenant_id, LIVE_EVENT, payload)
