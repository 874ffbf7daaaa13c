"""Instances → billing: usage intervals follow the state machine; credit gates creation.

(An exhausted balance hibernating the tenant's machines is a move: moves.py.)
"""

import logging

from billing import ledger, metering
from billing.exceptions import InsufficientCredits
from billing.models import UsageInterval
from billing.money import usd_text
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
