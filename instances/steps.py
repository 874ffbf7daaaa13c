"""The steps that workers run on machines (instances/tasks.py calls them): provision, stop,
start, destroy and recover. Each is safe to run twice: it checks the status first, and the
provider call carries the instance's provision key or is itself idempotent.
"""

import logging

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from instances.agent_tokens import agent_token, hash_agent_token
from instances.commands import abandon_queued_commands
from instances.models import Failover, Instance
from instances.providers import get_provider
from instances.providers.base import MachineSpec, Offer, OfferUnavailable, TransientProviderError
from instances.recovery import can_release, is_waiting_for_final_sync, new_provision_key
from instances.transitions import transition

logger = logging.getLogger(__name__)

Status = Instance.Status


def _spec_env(instance: Instance) -> dict[str, str]:
    return {
        "DUMONT_API_URL": settings.DUMONT_PUBLIC_URL,
        "DUMONT_AGENT_TOKEN": agent_token(instance.pk, instance.provision_key),
        "DUMONT_INSTANCE_ID": instance.pk,
        "DUMONT_HEARTBEAT_SECONDS": str(settings.AGENT_HEARTBEAT_SECONDS),
    }


def provision(instance_id: str) -> None:
    """pending → provisioning → a machine at the provider; the agent's first beat makes it run."""
    instance = Instance.objects.get(pk=instance_id)
    if instance.status == Status.PENDING:
        transition(
            instance,
            Status.PROVISIONING,
            reason="looking for an offer",
            provision_attempts=F("provision_attempts") + 1,
        )
    if instance.status != Status.PROVISIONING or instance.provider_id:
        return  # someone else moved it on, or a duplicate task already created the machine
    if not acquire_machine(instance):
        transition(
            instance,
            Status.ERROR,
            reason="no offer under the maximum price any more; delete it or retry later",
        )


RENT_ATTEMPTS = 3  # offers tried in turn when the cheapest is taken before we rent it


def acquire_machine(
    instance: Instance, *, exclude_offer_ids: frozenset[str] = frozenset(), any_region=False
) -> bool:
    """Create a machine for the instance in its current (booting) status, under its provision
    key: the cheapest offer of its GPU under its price, in its region (or, with `any_region`,
    anywhere if its region has none), never one of `exclude_offer_ids` (a host that just
    failed). False when there is no offer."""
    provider = get_provider()

    def search(region: str | None) -> list[Offer]:
        offers = provider.search_offers(
            gpu=instance.gpu,
            region=region,
            gpu_count=instance.gpu_count,
            max_price_micros=instance.max_price_micros,
        )
        return [o for o in offers if o.available > 0 and o.offer_id not in exclude_offer_ids]

    # A first machine goes where the customer asked (anywhere if they did not); a replacement
    # prefers where the instance was, then anywhere.
    region = instance.requested_region or (instance.region if any_region else "") or None
    offers = search(region)
    if not offers and any_region and region:
        offers = search(None)
    spec = MachineSpec(
        instance_id=instance.pk,
        image=instance.image,
        disk_gb=instance.disk_gb,
        ssh_public_keys=tuple(instance.ssh_keys.values_list("public_key", flat=True)),
        env=_spec_env(instance),
    )
    # An offer can be rented by someone else between the search and the rent (a busy market,
    # or our own instances failing over together): the next offers are tried before giving up.
    for offer in offers[:RENT_ATTEMPTS]:
        try:
            machine = provider.create(offer, spec, idempotency_key=instance.provision_key)
            break
        except OfferUnavailable as error:
            logger.info("offer %s for %s is gone: %s", offer.offer_id, instance.pk, error)
    else:
        return False
    Instance.objects.filter(pk=instance.pk, status=instance.status).update(
        provider=provider.name,
        provider_id=machine.provider_id,
        # Not always the offer just tried: a machine already under the key (rented by a run
        # that died before this write) came from an earlier search's offer.
        offer_id=machine.offer_id or offer.offer_id,
        region=machine.region,
        price_micros=machine.price_micros_per_hour,
        ssh_host=machine.ssh_host,
        ssh_port=machine.ssh_port or None,
        public_ip=machine.public_ip or None,
        agent_token_hash=hash_agent_token(spec.env["DUMONT_AGENT_TOKEN"]),
    )
    instance.refresh_from_db()
    return True


def stop(instance_id: str) -> None:
    """hibernating → after the final sync, release the machine (or stop it, keeping its disk,
    when there is no good sync) → hibernated."""
    instance = Instance.objects.get(pk=instance_id)
    if instance.status != Status.HIBERNATING:
        return
    if is_waiting_for_final_sync(instance, timezone.now()):
        return  # its result sends this step again; reconcile does if it never comes
    if not instance.provider_id:
        transition(instance, Status.HIBERNATED, reason="no machine to stop")
    elif can_release(instance):
        get_provider().destroy(instance.provider_id)
        with transaction.atomic():
            released = "the machine was released (hibernated)"
            abandon_queued_commands(instance, released, timezone.now())
        transition(
            instance,
            Status.HIBERNATED,
            reason="final sync done; GPU machine released",
            provider_id="",
            agent_token_hash="",
            needs_restore=True,
            restore_snapshot_id=instance.last_sync_snapshot_id,
        )
    else:
        get_provider().stop(instance.provider_id)
        transition(instance, Status.HIBERNATED, reason="no final sync; machine stopped, disk kept")


def start(instance_id: str) -> None:
    """waking → start the stopped machine, or get a new one that restores the latest sync; the
    agent's first beat (after its restore) makes it run."""
    instance = Instance.objects.get(pk=instance_id)
    if instance.status != Status.WAKING:
        return
    if instance.provider_id:
        get_provider().start(instance.provider_id)
        return
    if not acquire_machine(instance, any_region=True):
        raise TransientProviderError(f"no {instance.gpu} offer under the maximum price yet")


def destroy(instance_id: str) -> None:
    """deleting → destroy the machine → deleted."""
    instance = Instance.objects.get(pk=instance_id)
    if instance.status != Status.DELETING:
        return
    if instance.provider_id:
        get_provider().destroy(instance.provider_id)
    transition(instance, Status.DELETED, reason="machine destroyed", agent_token_hash="")


class NoReplacement(Exception):
    """No GPU offer to recover on yet; the task retries (reconcile resends it too)."""


def recover(instance_id: str) -> None:
    """failing_over → recovering → a new GPU (not the failed host), which restores the sync."""
    instance = Instance.objects.get(pk=instance_id)
    if instance.status in (Status.FAILING_OVER, Status.ON_STANDBY):
        transition(
            instance,
            Status.RECOVERING,
            reason="looking for a new GPU",
            actor="failover",
            expected_from={instance.status},
            **new_provision_key(instance),
        )
    if instance.status != Status.RECOVERING or instance.provider_id:
        return
    failed = set(
        Failover.objects.filter(instance=instance, status=Failover.Status.IN_PROGRESS)
        .exclude(failed_offer_id="")
        .values_list("failed_offer_id", flat=True)
    )
    if not acquire_machine(instance, exclude_offer_ids=frozenset(failed), any_region=True):
        raise NoReplacement(f"no {instance.gpu} offer under the maximum price right now")
