"""Celery entry points: each takes an id, reloads the row and calls a step (steps.py) or a move.

Every step is idempotent (it checks the status first, and the provider call carries an
idempotency key or is itself idempotent), so acks_late redelivery and duplicates are harmless.
Transient provider errors (429, 5xx, timeouts) are retried with exponential backoff; anything
else puts the instance in `error` with the provider's message, for reconcile or a person.
"""

import contextlib
import logging

from celery import shared_task
from django.utils.dateparse import parse_datetime

from instances import idle, moves, recovery, standby, steps
from instances.exceptions import InvalidTransition
from instances.models import Instance
from instances.providers import get_provider, get_standby_provider
from instances.providers.base import MachineNotFound, ProviderError, TransientProviderError
from instances.reconcile import reconcile_all

logger = logging.getLogger(__name__)

Status = Instance.Status
STEP_OPTIONS = {
    "autoretry_for": (TransientProviderError,),
    "retry_backoff": 2,
    "retry_backoff_max": 120,
    "retry_jitter": True,
    "max_retries": 8,
}


def _run_step(step, instance_id: str, what: str) -> None:
    try:
        step(instance_id)
    except TransientProviderError:
        raise
    except ProviderError as error:
        logger.warning("%s of %s failed: %s", what, instance_id, error)
        with contextlib.suppress(InvalidTransition):
            moves.mark_error(
                Instance.objects.get(pk=instance_id), actor="system", reason=f"{what}: {error}"
            )


@shared_task(**STEP_OPTIONS)
def provision(instance_id: str) -> None:
    """Find an offer and create the machine for a pending instance."""
    _run_step(steps.provision, instance_id, "provisioning failed")


@shared_task(**STEP_OPTIONS)
def stop(instance_id: str) -> None:
    """Stop the machine of a hibernating instance."""
    _run_step(steps.stop, instance_id, "stopping the machine failed")


@shared_task(**STEP_OPTIONS)
def start(instance_id: str) -> None:
    """Start the machine of a waking instance."""
    _run_step(steps.start, instance_id, "starting the machine failed")


@shared_task(**STEP_OPTIONS)
def destroy(instance_id: str) -> None:
    """Destroy the machine of a deleting instance."""
    _run_step(steps.destroy, instance_id, "destroying the machine failed")


@shared_task(**{**STEP_OPTIONS, "autoretry_for": (TransientProviderError, steps.NoReplacement)})
def recover(instance_id: str) -> None:
    """Get a failed-over instance a new GPU (retried while the market has none)."""
    # InvalidTransition: it moved on meanwhile (deleted, or another worker recovered it).
    with contextlib.suppress(InvalidTransition):
        _run_step(steps.recover, instance_id, "recovering on a new GPU failed")


@shared_task(**STEP_OPTIONS)
def check_machine(instance_id: str, lost_at: str = "") -> None:
    """Ask the provider about one running instance's machine now; fail over if it is lost.
    `lost_at` (ISO time): when the machine was taken, if the caller knows (the failover's RPO
    and RTO count from then, not from when this task got its turn in the queue)."""
    instance = Instance.objects.get(pk=instance_id)
    if instance.status != Status.RUNNING or not instance.provider_id:
        return
    try:
        machine = get_provider(instance.provider).get(instance.provider_id)
        state = machine.state.value
    except MachineNotFound:
        state = "gone"
    if state in ("interrupted", "destroyed", "gone"):
        at = parse_datetime(lost_at) if lost_at else None
        recovery.check_machine_lost(instance, state, at=at)


@shared_task(**STEP_OPTIONS)
def create_standby(instance_id: str) -> None:
    """A CPU standby VM for an instance that runs (plans with standby)."""
    standby.create_standby(instance_id)


@shared_task(**STEP_OPTIONS)
def stop_standby(standby_id: str) -> None:
    """Stop the standby of a hibernated instance."""
    standby.stop_standby(int(standby_id))


@shared_task(**STEP_OPTIONS)
def start_standby(standby_id: str) -> None:
    """Start the standby of an instance running again."""
    standby.start_standby(int(standby_id))


@shared_task(**STEP_OPTIONS)
def destroy_standby(standby_id: str) -> None:
    """Delete the standby of a deleted instance."""
    standby.destroy_standby(int(standby_id))


@shared_task(**STEP_OPTIONS)
def destroy_standby_machine(reference: str) -> None:
    """Delete a lost standby's VM if anything is left of it (`provider:provider_id`)."""
    provider, _, provider_id = reference.partition(":")
    get_standby_provider(provider).destroy(provider_id)


@shared_task(**STEP_OPTIONS)
def stop_machine(reference: str) -> None:
    """Stop a machine whose instance is in error (`provider:provider_id`); idempotent."""
    provider, _, provider_id = reference.partition(":")
    with contextlib.suppress(MachineNotFound):
        get_provider(provider or None).stop(provider_id)


@shared_task(**STEP_OPTIONS)
def destroy_machine(provider_id: str) -> None:
    """Destroy a machine no instance uses any more (an abandoned provisioning attempt)."""
    get_provider().destroy(provider_id)


@shared_task
def hibernate_idle() -> list[str]:
    """Hibernate running GPUs idle past their tenant's settings (one query finds them)."""
    hibernated = []
    for instance_id in idle.idle_instance_ids():
        instance = Instance.objects.select_related("tenant__settings").get(pk=instance_id)
        tenant_settings = getattr(instance.tenant, "settings", None)
        threshold = tenant_settings.idle_threshold_percent if tenant_settings else 5
        minutes = tenant_settings.idle_minutes if tenant_settings else idle.DEFAULT_IDLE_MINUTES
        with contextlib.suppress(InvalidTransition):
            moves.hibernate_instance(
                instance,
                actor="auto-hibernate",
                reason=f"GPU under {threshold}% for {minutes} min",
            )
            hibernated.append(instance_id)
    return hibernated


@shared_task
def reconcile() -> dict:
    """Compare provider and database; retry or fail instances stuck in a transitional status."""
    return reconcile_all().as_dict()
