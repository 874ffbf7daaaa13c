"""Celery entry points of billing."""

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from billing import alerts, ledger, metering, storage, trial
from billing.models import Subscription
from billing.signals import balance_exhausted


@shared_task
def post_usage() -> int:
    """Post open usage intervals and stored bytes; tenants left without credit are signalled
    (to hibernate)."""
    now = timezone.now()
    charged = metering.post_open_intervals(now) | storage.post_storage(now)
    for tenant_id in charged:
        alerts.check_tenant(tenant_id)
    exhausted = [tenant_id for tenant_id in charged if ledger.balance_micros(tenant_id) <= 0]
    for tenant_id in exhausted:
        transaction.on_commit(
            lambda tenant_id=tenant_id: balance_exhausted.send(sender=None, tenant_id=tenant_id)
        )
    return len(exhausted)


@shared_task
def expire_trials() -> int:
    """End the trials whose seven days are over."""
    ended = Subscription.objects.filter(
        status=Subscription.Status.TRIALING, trial_ends_at__lte=timezone.now()
    )
    return sum(1 for subscription in ended if trial.expire_trial(subscription) >= 0)
