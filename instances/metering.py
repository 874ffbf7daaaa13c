"""Instances → billing: usage intervals follow the state machine; credit gates creation; an
exhausted balance hibernates the tenant's running machines."""

import logging

from django.db import transaction

from accounts.mail import mail_owners
from billing import ledger, metering
from billing.exceptions import InsufficientCredits
from billing.models import UsageInterval
from billing.money import usd_text
from instances.exceptions import InvalidTransition
from instances.models import Instance, InstanceEvent

logger = logging.getLogger(__name__)
Status = Instance.Status


def meter_transition(instance: Instance, event: InstanceEvent) -> None:
    """Transition hook: a GPU is billed exactly while its instance is running."""
    if event.to_status == Status.RUNNING and instance.price_micros:
        metering.open_interval(
            instance.tenant_id,
            UsageInterval.Kind.GPU,
            instance.pk,
            metering.billed_price(instance.price_micros),
            at=event.created_at,
            description=f"{instance.gpu_count}x {instance.gpu} ({instance.name})",
        )
    elif event.from_status == Status.RUNNING:
        metering.close_interval(instance.pk, UsageInterval.Kind.GPU, at=event.created_at)


def require_credit_for_an_hour(tenant_id: int, price_micros_per_hour: int) -> None:
    """402 insufficient_credits unless the balance covers one hour at this price."""
    needed = metering.billed_price(price_micros_per_hour)
    balance = ledger.balance_micros(tenant_id)
    if balance < needed:
        raise InsufficientCredits(
            f"One hour of this machine costs ${usd_text(needed)}; "
            f"the balance is ${usd_text(balance)}. Add credits or choose a plan."
        )


def hibernate_for_exhausted_credit(sender, tenant_id: int, **kwargs) -> None:
    """billing.signals.balance_exhausted: stop every running machine and tell the owners."""
    from instances.services import hibernate_instance

    stopped = []
    for instance in Instance.objects.for_tenant(tenant_id).filter(status=Status.RUNNING):
        try:
            with transaction.atomic():
                hibernate_instance(instance, actor="billing", reason="credit exhausted")
            stopped.append(instance.name)
        except InvalidTransition:
            continue
    if not stopped:
        return
    mail_owners(
        tenant_id,
        "Dumont Cloud: credit exhausted, instances hibernated",
        "Your balance reached zero, so these instances were hibernated (their disks are kept): "
        + ", ".join(stopped)
        + ". Add credits to wake them.",
    )
