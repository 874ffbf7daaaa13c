"""Every change to webhooks goes through these functions: emit events, manage endpoints, resend.

Network work never happens here: deliveries are queued after commit and sent by webhooks.tasks.
"""

import uuid
from collections.abc import Iterable
from functools import partial

from django.db import transaction
from django.utils import timezone

from accounts.context import TenantContext
from accounts.exceptions import RoleForbidden
from accounts.models import AuditLog, Tenant, User
from accounts.services import record_audit
from webhooks import ssrf
from webhooks.events import EVENTS, PING
from webhooks.exceptions import EndpointInactive, TooManyEndpoints, UnknownEvent
from webhooks.models import WebhookDelivery, WebhookEndpoint, new_signing_secret
from webhooks.tasks import deliver_webhook

MAX_ENDPOINTS_PER_TENANT = 20


def _queue_after_commit(delivery: WebhookDelivery) -> None:
    transaction.on_commit(partial(deliver_webhook.delay, delivery.tenant_id, delivery.pk))


def _envelope(event_id: uuid.UUID, event: str, tenant_id: int, data: dict) -> dict:
    return {
        "id": str(event_id),
        "type": event,
        "created_at": timezone.now().isoformat(),
        "tenant": tenant_id,
        "data": data,
    }


def emit(tenant: Tenant | int, event: str, data: dict) -> list[WebhookDelivery]:
    """Write one outbox row per active endpoint subscribed to `event`; send them after commit.

    Call it inside the transaction that makes the change the event reports (the instance
    transition, the ledger entry...): if that transaction rolls back, no row is written and no
    delivery is sent. Called outside a transaction it commits on its own. `data` must be
    JSON-serialisable (datetimes, decimals and UUIDs become strings).
    """
    if event not in EVENTS:
        raise UnknownEvent(f"{event!r} is not in the webhook catalog.")
    tenant_id = tenant.pk if isinstance(tenant, Tenant) else tenant
    with transaction.atomic():
        endpoints = [
            endpoint
            for endpoint in WebhookEndpoint.objects.for_tenant(tenant_id).filter(is_active=True)
            if endpoint.is_subscribed_to(event)
        ]
        if not endpoints:
            return []
        event_id = uuid.uuid4()
        payload = _envelope(event_id, event, tenant_id, data)
        now = timezone.now()
        deliveries = WebhookDelivery.objects.bulk_create(
            WebhookDelivery(
                tenant_id=tenant_id,
                endpoint=endpoint,
                event=event,
                event_id=event_id,
                payload=payload,
                next_attempt_at=now,
            )
            for endpoint in endpoints
        )
        for delivery in deliveries:
            _queue_after_commit(delivery)
    return deliveries


# --- Endpoints -------------------------------------------------------------------------------


def _require_admin(context: TenantContext) -> None:
    if not context.is_admin:
        raise RoleForbidden("Only owners and admins can manage webhooks.")


def validated_events(events: Iterable[str]) -> list[str]:
    """The subscribed names without repeats, in catalog order; UnknownEvent for any other."""
    requested = set(events)
    unknown = sorted(requested - set(EVENTS))
    if unknown:
        raise UnknownEvent(f"Unknown events: {', '.join(unknown)}. Known: {', '.join(EVENTS)}.")
    return [event for event in EVENTS if event in requested]


def create_endpoint(
    context: TenantContext,
    *,
    url: str,
    events: Iterable[str],
    description: str = "",
    is_active: bool = True,
) -> WebhookEndpoint:
    """Register a URL for the tenant's events; its signing secret is generated here."""
    _require_admin(context)
    events = validated_events(events)
    url = ssrf.check_url(url)  # resolves DNS: before the transaction, which it need not hold
    with transaction.atomic():
        if WebhookEndpoint.objects.for_tenant(context.tenant).count() >= MAX_ENDPOINTS_PER_TENANT:
            raise TooManyEndpoints(
                f"An organisation can have at most {MAX_ENDPOINTS_PER_TENANT} webhook endpoints."
            )
        endpoint = WebhookEndpoint.objects.create(
            tenant=context.tenant,
            url=url,
            events=events,
            description=description,
            is_active=is_active,
        )
        record_audit(
            AuditLog.Action.WEBHOOK_CREATED,
            tenant=context.tenant,
            actor=context.user,
            ip=context.ip,
            target=url,
            endpoint_id=endpoint.pk,
            events=events,
        )
    return endpoint


def update_endpoint(
    context: TenantContext, endpoint: WebhookEndpoint, **changes
) -> WebhookEndpoint:
    """Change an endpoint's url, events, description or is_active."""
    _require_admin(context)
    if "events" in changes:
        changes["events"] = validated_events(changes["events"])
    if "url" in changes:
        changes["url"] = ssrf.check_url(changes["url"])
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        before = {field: getattr(endpoint, field) for field in changes}
        for field, value in changes.items():
            setattr(endpoint, field, value)
        endpoint.save()
        record_audit(
            AuditLog.Action.WEBHOOK_UPDATED,
            tenant=context.tenant,
            actor=context.user,
            ip=context.ip,
            target=endpoint.url,
            endpoint_id=endpoint.pk,
            before=before,
            after=changes,
        )
    return endpoint


@transaction.atomic
def delete_endpoint(context: TenantContext, endpoint: WebhookEndpoint) -> None:
    """Delete an endpoint with its delivery log; its pending deliveries are never sent."""
    _require_admin(context)
    record_audit(
        AuditLog.Action.WEBHOOK_DELETED,
        tenant=context.tenant,
        actor=context.user,
        ip=context.ip,
        target=endpoint.url,
        endpoint_id=endpoint.pk,
    )
    endpoint.delete()


@transaction.atomic
def rotate_secret(context: TenantContext, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Replace the signing secret at once; every later attempt, retries too, uses the new one."""
    _require_admin(context)
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    endpoint.secret = new_signing_secret()
    endpoint.save(update_fields=["secret", "updated_at"])
    record_audit(
        AuditLog.Action.WEBHOOK_SECRET_ROTATED,
        tenant=context.tenant,
        actor=context.user,
        ip=context.ip,
        target=endpoint.url,
        endpoint_id=endpoint.pk,
        secret_prefix=endpoint.secret_prefix,
    )
    return endpoint


# --- Test events and redelivery ------------------------------------------------------------------


@transaction.atomic
def send_ping(context: TenantContext, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Queue a `ping` test event to this endpoint now, whatever it subscribes to."""
    _require_admin(context)
    if not endpoint.is_active:
        raise EndpointInactive()
    event_id = uuid.uuid4()
    payload = _envelope(
        event_id,
        PING,
        context.tenant.pk,
        {"endpoint": {"id": endpoint.pk, "url": endpoint.url}, "message": "Hello from Dumont."},
    )
    delivery = WebhookDelivery.objects.create(
        tenant=context.tenant,
        endpoint=endpoint,
        event=PING,
        event_id=event_id,
        payload=payload,
        next_attempt_at=timezone.now(),
    )
    _queue_after_commit(delivery)
    return delivery


def _redeliver(
    delivery: WebhookDelivery, *, actor: User, ip: str | None, **audit
) -> WebhookDelivery:
    if not delivery.endpoint.is_active:
        raise EndpointInactive()
    # A new outbox row with the same event id and body: the original keeps its own history,
    # and the receiver can tell it already has this event.
    resent = WebhookDelivery.objects.create(
        tenant_id=delivery.tenant_id,
        endpoint_id=delivery.endpoint_id,
        event=delivery.event,
        event_id=delivery.event_id,
        payload=delivery.payload,
        next_attempt_at=timezone.now(),
    )
    record_audit(
        AuditLog.Action.WEBHOOK_REDELIVERED,
        tenant=delivery.tenant,
        actor=actor,
        ip=ip,
        target=delivery.endpoint.url,
        delivery_id=delivery.pk,
        new_delivery_id=resent.pk,
        event_id=str(delivery.event_id),
        **audit,
    )
    _queue_after_commit(resent)
    return resent


@transaction.atomic
def redeliver(context: TenantContext, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a delivery's event again now, as a new delivery with the same event id."""
    _require_admin(context)
    return _redeliver(delivery, actor=context.user, ip=context.ip)


@transaction.atomic
def redeliver_as_staff(
    delivery: WebhookDelivery, *, staff: User, ip: str | None
) -> WebhookDelivery:
    """The support staff's redeliver (Django admin action): the same, audited as staff."""
    return _redeliver(delivery, actor=staff, ip=ip, by_staff=True)
