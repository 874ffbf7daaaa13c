"""Live push: one Channels group per tenant, reachable from the web process or a worker."""

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

EVENT_MESSAGE_TYPE = "tenant.event"  # handled by TenantConsumer.tenant_event


def tenant_group(tenant_id: int) -> str:
    return f"tenant-{tenant_id}"


def _message(event: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": EVENT_MESSAGE_TYPE, "event": event, "data": data}


def push_to_tenant(tenant_id: int, event: str, data: dict[str, Any]) -> None:
    """Send `event` to every websocket of the tenant (from sync code: views, services, tasks)."""
    async_to_sync(get_channel_layer().group_send)(tenant_group(tenant_id), _message(event, data))


def push_after_commit(tenant_id: int, event: str, data: dict[str, Any]) -> None:
    """push_to_tenant once the caller's transaction commits, never failing the caller.

    Live events are a convenience on top of committed state (clients re-read on reconnect), so
    an unreachable channel layer is logged, not raised into a request that already committed.
    """
    from django.db import transaction

    def push() -> None:
        try:
            push_to_tenant(tenant_id, event, data)
        except Exception:
            logging.getLogger(__name__).exception("live push failed for tenant %s", tenant_id)

    transaction.on_commit(push)


async def apush_to_tenant(tenant_id: int, event: str, data: dict[str, Any]) -> None:
    """push_to_tenant for async code."""
    await get_channel_layer().group_send(tenant_group(tenant_id), _message(event, data))
