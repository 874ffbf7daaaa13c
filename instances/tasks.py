"""Celery entry points: each takes an id, reloads the row and calls a service step.

Every step is idempotent (it checks the status first, and the provider call carries an
idempotency key or is itself idempotent), so acks_late redelivery and duplicates are harmless.
Transient provider errors (429, 5xx, timeouts) are retried with exponential backoff; anything
else puts the instance in `error` with the provider's message, for reconcile or a person.
"""

import contextlib
import logging

from celery import shared_task

from instances import services
from instances.exceptions import InvalidTransition
from instances.models import Instance
from instances.providers import get_provider
from instances.providers.base import ProviderError, TransientProviderError
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
            services.mark_error(
                Instance.objects.get(pk=instance_id), actor="system", reason=f"{what}: {error}"
            )


@shared_task(**STEP_OPTIONS)
def provision(instance_id: str) -> None:
    """Find an offer and create the machine for a pending instance."""
    _run_step(services.provision, instance_id, "provisioning failed")


@shared_task(**STEP_OPTIONS)
def stop(instance_id: str) -> None:
    """Stop the machine of a hibernating instance."""
    _run_step(services.stop, instance_id, "stopping the machine failed")


@shared_task(**STEP_OPTIONS)
def start(instance_id: str) -> None:
    """Start the machine of a waking instance."""
    _run_step(services.start, instance_id, "starting the machine failed")


@shared_task(**STEP_OPTIONS)
def destroy(instance_id: str) -> None:
    """Destroy the machine of a deleting instance."""
    _run_step(services.destroy, instance_id, "destroying the machine failed")


@shared_task(**STEP_OPTIONS)
def destroy_machine(provider_id: str) -> None:
    """Destroy a machine no instance uses any more (an abandoned provisioning attempt)."""
    get_provider().destroy(provider_id)


@shared_task
def reconcile() -> dict:
    """Compare provider and database; retry or fail instances stuck in a transitional status."""
    return reconcile_all().as_dict()
