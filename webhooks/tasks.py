"""Celery entry points: deliver one webhook, and the periodic sweep that sends due retries."""

from datetime import timedelta

from celery import shared_task
from django.db.models import Q
from django.utils import timezone

from webhooks.delivery import attempt_delivery
from webhooks.models import WebhookDelivery

# A first attempt is queued after commit; if its task has not claimed the row by then, the
# task was lost (broker or worker died) and the sweep queues it again.
LOST_TASK_AFTER = timedelta(seconds=60)
SWEEP_BATCH = 1000


@shared_task(name="webhooks.deliver", ignore_result=True)
def deliver_webhook(tenant_id: int, delivery_id: int) -> None:
    """Make one attempt at a due delivery; a duplicate or late task does nothing."""
    attempt_delivery(tenant_id, delivery_id)


@shared_task(name="webhooks.sweep_deliveries", ignore_result=True)
def sweep_deliveries() -> int:
    """Queue every due delivery: retries whose backoff ended, first attempts whose task was lost."""
    now = timezone.now()
    # A retry (attempt_count > 0) has no task of its own until the sweep sends one. A first
    # attempt has one, queued by emit; the sweep leaves it LOST_TASK_AFTER to run. Either
    # way a task queued twice is harmless: the claim in deliver_webhook lets one through.
    due = (
        WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING)
        .filter(
            Q(attempt_count__gt=0, next_attempt_at__lte=now)
            | Q(attempt_count=0, next_attempt_at__lte=now - LOST_TASK_AFTER)
        )
        .order_by("next_attempt_at")
        .values_list("tenant_id", "pk")[:SWEEP_BATCH]
    )
    queued = 0
    for tenant_id, delivery_id in due:
        deliver_webhook.delay(tenant_id, delivery_id)
        queued += 1
    return queued
