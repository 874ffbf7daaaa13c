"""What customers, support staff and billing do to instances: create, hibernate, wake, delete,
retry, mark in error. Views, the admin and the portal call these; each records its transition and
queues the step a worker completes (instances/steps.py) after commit.
"""

from dataclasses import dataclass

from django.db import transaction
from django.http import Http404
from django.utils import timezone

from accounts.exceptions import RoleForbidden
from accounts.mail import mail_owners
from accounts.models import SshKey, Tenant
from billing.entitlements import entitlements_of
from billing.money import micros_to_usd
from instances import recovery, tasks_queue
from instances.exceptions import (
    InstanceLimitReached,
    InvalidTransition,
    NoCapacity,
    ProviderUnavailable,
    RegionNotInPlan,
    UnknownGpu,
    UnknownRegion,
)
from instances.metering import require_credit_for_an_hour
from instances.models import Instance
from instances.providers import get_provider
from instances.providers.base import Offer, TransientProviderError
from instances.transitions import record_creation, transition
from spot.catalog import Gpu, find_gpu, find_region, gpus

Status = Instance.Status
MAX_ALTERNATIVES = 5


class UnknownSshKey(UnknownGpu):
    code = "unknown_ssh_key"


@dataclass(frozen=True)
class InstanceRequest:
    gpu: str
    max_price_micros: int
    gpu_count: int = 1
    region: str = ""
    name: str = ""
    ssh_key_ids: tuple[int, ...] = ()
    disk_gb: int = 50
    image: str = "pytorch/pytorch:latest"


def resolve_gpu(text: str) -> Gpu:
    gpu = find_gpu(text)
    if gpu is None:
        known = ", ".join(g.name for g in gpus())
        raise UnknownGpu(f"Unknown GPU {text!r}. Known GPUs: {known}.")
    return gpu


def resolve_region(text: str) -> str:
    if not text:
        return ""
    region = find_region(text)
    if region is None:
        raise UnknownRegion(
            f"Unknown region {text!r}. Regions: US-East, US-West, EU-West, Asia-Pacific."
        )
    return region


def search_offers(**filters) -> list[Offer]:
    """The provider's offers; a provider that does not answer is a 503 for the caller."""
    try:
        return get_provider().search_offers(**filters)
    except TransientProviderError as error:
        raise ProviderUnavailable() from error


def _alternatives(gpu: Gpu, region: str, gpu_count: int, max_price_micros: int) -> list[dict]:
    """The cheapest other choices: same GPU elsewhere or above the price, or similar GPUs."""
    market = search_offers(gpu=None, region=None, gpu_count=gpu_count, max_price_micros=None)
    choices: dict[tuple[str, str], tuple[Offer, str]] = {}
    for offer in market:  # cheapest first, so the first offer per (gpu, region) is its best
        candidate = find_gpu(offer.gpu)
        if candidate is None or (offer.gpu, offer.region) in choices or offer.available < 1:
            continue
        if candidate.name == gpu.name:
            within = offer.price_micros_per_hour <= max_price_micros
            why = "same GPU in another region" if within else "same GPU above your maximum price"
        elif candidate.vram_gb >= gpu.vram_gb and offer.price_micros_per_hour <= max_price_micros:
            why = f"{candidate.vram_gb} GB GPU within your maximum price"
        else:
            continue
        choices[(offer.gpu, offer.region)] = (offer, why)
    ranked = sorted(
        choices.values(),
        key=lambda item: (item[0].gpu != gpu.name, item[0].price_micros_per_hour),
    )
    return [
        {
            "gpu": offer.gpu,
            "region": offer.region,
            "gpu_count": offer.gpu_count,
            "price_per_hour": float(micros_to_usd(offer.price_micros_per_hour)),
            "available": offer.available,
            "why": why,
        }
        for offer, why in ranked[:MAX_ALTERNATIVES]
    ]


def create_instance(tenant: Tenant, request: InstanceRequest, *, actor: str) -> Instance:
    """Check the market has a machine under the price, then record a pending instance."""
    gpu = resolve_gpu(request.gpu)
    region = resolve_region(request.region)
    keys = list(SshKey.objects.for_tenant(tenant).filter(pk__in=request.ssh_key_ids))
    if len(keys) != len(set(request.ssh_key_ids)):
        raise UnknownSshKey("One of ssh_key_ids is not a key of this organisation.")
    offers = search_offers(
        gpu=gpu.name,
        region=region or None,
        gpu_count=request.gpu_count,
        max_price_micros=request.max_price_micros,
    )
    allowed = entitlements_of(tenant)
    if allowed["regions"] and region and region not in allowed["regions"]:
        raise RegionNotInPlan(
            f"Your plan ({allowed['plan']}) runs instances in {', '.join(allowed['regions'])} "
            f"only, not {region}.",
            plan=allowed["plan"],
        )
    available = [
        offer
        for offer in offers
        if offer.available > 0 and (not allowed["regions"] or offer.region in allowed["regions"])
    ]
    if allowed["regions"] and not region and available:
        region = available[0].region  # the best offer the plan allows; provisioning stays there
    if not available:
        where = f" in {region}" if region else ""
        price = micros_to_usd(request.max_price_micros)
        raise NoCapacity(
            f"No {request.gpu_count} x {gpu.name}{where} at or under ${price}/h right now.",
            _alternatives(gpu, region, request.gpu_count, request.max_price_micros),
        )
    require_credit_for_an_hour(tenant.pk, available[0].price_micros_per_hour)
    with transaction.atomic():
        _check_instance_limit(tenant, allowed)
        instance = Instance.objects.create(
            tenant=tenant,
            name=request.name or f"{gpu.name.lower().replace(' ', '-')}-{timezone.now():%m%d%H%M}",
            gpu=gpu.name,
            gpu_count=request.gpu_count,
            requested_region=region,
            max_price_micros=request.max_price_micros,
            disk_gb=request.disk_gb,
            image=request.image,
            status_changed_at=timezone.now(),
        )
        Instance.objects.filter(pk=instance.pk).update(provision_key=f"{instance.pk}-1")
        instance.provision_key = f"{instance.pk}-1"
        instance.ssh_keys.set(keys)
        record_creation(instance, actor=actor)
        tasks_queue.after_commit("provision", instance.pk)
    return instance


def _check_instance_limit(tenant: Tenant, allowed) -> None:
    """At most the plan's number of instances (hibernated ones count: they keep their place).

    The tenant's row is locked first so that two concurrent creations cannot both pass."""
    limit = allowed["max_instances"]
    if limit is None:
        return
    Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
    held = (
        Instance.objects.for_tenant(tenant)
        .exclude(status__in=[Status.DELETING, Status.DELETED, Status.ERROR])
        .count()
    )
    if held >= limit:
        raise InstanceLimitReached(
            f"Your plan ({allowed['plan']}) allows {limit} instance{'s' if limit != 1 else ''} "
            f"and you have {held}; delete one or choose a larger plan.",
            plan=allowed["plan"],
        )


def simulate_interruption(instance: Instance, *, context) -> None:
    """The simulated market takes the instance's machine back; failover follows as for a real
    interruption. 404 for an instance that is not on the simulator; owners and admins only."""
    if instance.provider != "sim" or not instance.provider_id:
        raise Http404("The instance is not on the simulated market.")
    if not context.is_admin:
        raise RoleForbidden("Only owners and admins can interrupt an instance.")
    if instance.status != Status.RUNNING:
        raise InvalidTransition(instance.status, Status.FAILING_OVER)
    lost_at = timezone.now()
    get_provider("sim").interrupt(instance.provider_id)
    tasks_queue.send("check_machine", instance.pk, lost_at=lost_at.isoformat())


def _move(instance: Instance, to_status: str, *, actor: str, reason: str, step: str) -> Instance:
    """A customer's move that a task completes: transition now, queue the provider call."""
    with transaction.atomic():
        transition(instance, to_status, reason=reason, actor=actor)
        tasks_queue.after_commit(step, instance.pk)
    return instance


def hibernate_instance(instance: Instance, *, actor: str, reason: str = "") -> Instance:
    """Stop paying for the GPU: a final sync, then the machine is released (or, with no good
    sync, stopped with its disk). The agent's report of the sync sends the stop step."""
    with transaction.atomic():
        transition(instance, Status.HIBERNATING, reason=reason or "hibernate", actor=actor)
        recovery.start_hibernation(instance)
    return instance


def wake_instance(instance: Instance, *, actor: str) -> Instance:
    """Start the stopped machine again, or (released on hibernation) get a new one."""
    with transaction.atomic():
        fields = {} if instance.provider_id else recovery.new_provision_key(instance)
        transition(instance, Status.WAKING, reason="wake", actor=actor, **fields)
        tasks_queue.after_commit("start", instance.pk)
    return instance


def delete_instance(instance: Instance, *, actor: str) -> Instance:
    """Destroy the machine and its disk; the instance stays, as deleted, with its events."""
    return _move(instance, Status.DELETING, actor=actor, reason="delete", step="destroy")


def retry_provision(instance: Instance, *, actor: str) -> Instance:
    """error → pending with a new provision key (the old machine, if any, is destroyed)."""
    old_machine = instance.provider_id
    attempt = instance.provision_attempts + 1
    with transaction.atomic():
        transition(
            instance,
            Status.PENDING,
            reason="retry provisioning",
            actor=actor,
            expected_from={Status.ERROR},
            provision_key=f"{instance.pk}-{attempt}",
            provider_id="",
            agent_token_hash="",
        )
        if old_machine:
            tasks_queue.after_commit("destroy_machine", old_machine)
        tasks_queue.after_commit("provision", instance.pk)
    return instance


def mark_error(instance: Instance, *, actor: str, reason: str) -> bool:
    """Any live status → error, with the reason a person or reconcile gives."""
    return transition(instance, Status.ERROR, reason=reason, actor=actor)


def hibernate_for_exhausted_credit(sender, tenant_id: int, **kwargs) -> None:
    """billing.signals.balance_exhausted: stop every running machine and tell the owners."""
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
