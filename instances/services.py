"""What customers, support staff and tasks do to instances. Views and tasks call these."""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import SshKey, Tenant
from billing.entitlements import entitlements_of
from billing.money import micros_to_usd
from instances import commands as agent_commands
from instances import heartbeats, metering, recovery, tasks_queue
from instances.agent_tokens import agent_token, hash_agent_token
from instances.exceptions import (
    InstanceLimitReached,
    InvalidTransition,
    NoCapacity,
    ProviderUnavailable,
    RegionNotInPlan,
    UnknownAgent,
    UnknownGpu,
    UnknownRegion,
)
from instances.models import AgentCommand, Instance
from instances.providers import get_provider
from instances.providers.base import Offer, OfferUnavailable, TransientProviderError
from instances.transitions import record_creation, transition
from spot.catalog import Gpu, find_gpu, find_region, gpus

logger = logging.getLogger(__name__)

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
    metering.require_credit_for_an_hour(tenant.pk, available[0].price_micros_per_hour)
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
    from django.http import Http404

    from accounts.exceptions import RoleForbidden

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


# --- Steps run by tasks (instances/tasks.py); each is safe to run twice ----------------------


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
    from instances.providers.base import MachineSpec

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
    if recovery.is_waiting_for_final_sync(instance, timezone.now()):
        return  # its result sends this step again; reconcile does if it never comes
    if not instance.provider_id:
        transition(instance, Status.HIBERNATED, reason="no machine to stop")
    elif recovery.can_release(instance):
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


# --- Agent -------------------------------------------------------------------------------------

# Statuses in which a heartbeat proves the machine is up and ready.
BOOTING = {Status.PROVISIONING, Status.WAKING, Status.RECOVERING}


@dataclass(frozen=True)
class HeartbeatReply:
    instance_id: str
    status: str
    interval_seconds: float
    commands: list[dict]


def record_heartbeat(
    token: str,
    *,
    gpu_utilization_percent: float,
    command_results: list[dict],
    command_progress: list[dict] = (),
    sync: dict | None = None,
    activity: dict | None = None,
    now: datetime | None = None,
) -> HeartbeatReply:
    """Store one beat (one SQL statement); the first beat of a booting machine makes it run."""
    now = now or timezone.now()
    in_use = heartbeats.is_in_use(activity)
    beat = heartbeats.ingest(token, gpu_utilization_percent, now, in_use=in_use)
    if beat is None:
        raise UnknownAgent()
    if command_progress:
        _record_progress(beat.instance_id, command_progress)
    if sync:
        _record_sync(beat.instance_id, sync, now)
    return complete_heartbeat(beat, command_results, now)


def needs_completion(beat: heartbeats.Beat) -> bool:
    """Whether a stored beat still has work: a booting machine to run, or commands to hand out."""
    return beat.status in BOOTING or beat.has_queued_commands


def complete_heartbeat(
    beat: heartbeats.Beat, command_results: list[dict], now: datetime
) -> HeartbeatReply:
    """After the beat is stored: run a booting machine, record results, hand out commands."""
    status = beat.status
    if status in BOOTING:
        status = recovery.agent_booted(beat.instance_id)
    if command_results:
        finish_commands(beat.instance_id, command_results, now)
    queued = beat.has_queued_commands
    if command_results or beat.status in BOOTING:
        # What this beat set off for this agent (a restore on boot; a sync once the restore
        # is done) goes out in this reply, not a heartbeat interval later: after a failover
        # the new GPU starts syncing at once, which bounds the RPO of a second interruption.
        status, queued = Instance.objects.values_list("status", "has_queued_commands").get(
            pk=beat.instance_id
        )
    commands = _hand_out_commands(beat.instance_id, now) if queued else []
    return HeartbeatReply(
        instance_id=beat.instance_id,
        status=status,
        interval_seconds=settings.AGENT_HEARTBEAT_SECONDS,
        commands=commands,
    )


def queue_command(instance: Instance, kind: str, args: dict | None = None) -> AgentCommand:
    """Queue a command for the agent; it gets it in its next heartbeat response."""
    with transaction.atomic():
        command = AgentCommand.objects.create(
            tenant_id=instance.tenant_id, instance=instance, kind=kind, args=args or {}
        )
        Instance.objects.filter(pk=instance.pk).update(has_queued_commands=True)
    return command


def _hand_out_commands(instance_id: str, now: datetime) -> list[dict]:
    with transaction.atomic():
        # The flag is cleared FIRST. queue_command sets it in the transaction that adds the
        # command, so this update waits for any such transaction, and the select below (a new
        # statement) then sees its command. Cleared after the select, it would overwrite the
        # flag of a command committed in between, which would then wait with no beat asking.
        Instance.objects.filter(pk=instance_id).update(has_queued_commands=False)
        queued = list(
            AgentCommand.objects.select_for_update(skip_locked=True).filter(
                instance_id=instance_id, standby=None, state=AgentCommand.State.QUEUED
            )
        )
        AgentCommand.objects.filter(pk__in=[c.pk for c in queued]).update(
            state=AgentCommand.State.SENT, sent_at=now
        )
    return [{"id": c.pk, "kind": c.kind, "args": agent_commands.arguments_for(c)} for c in queued]


def finish_commands(instance_id: str, results: list[dict], now: datetime, *, standby=None) -> None:
    """Record what an agent (the machine's, or its standby's) reports of its commands."""
    for result in results:
        with transaction.atomic():
            command = (
                AgentCommand.objects.select_for_update()
                .filter(
                    instance_id=instance_id,
                    standby=standby,
                    pk=result["id"],
                    state=AgentCommand.State.SENT,
                )
                .first()
            )
            if command is None:
                continue  # unknown, or already reported (a retried beat)
            detail = str(result.get("detail", ""))[:2000]
            command.state = (
                AgentCommand.State.SUCCEEDED if result["ok"] else AgentCommand.State.FAILED
            )
            command.detail, command.finished_at = detail, now
            command.save(update_fields=["state", "detail", "finished_at"])
            hook = agent_commands.result_hook(command.kind)
            if hook:
                hook(command, result["ok"], detail, result.get("result") or {})


def abandon_queued_commands(instance: Instance, reason: str, now: datetime) -> None:
    """The instance's machine is gone: what was queued for it and never handed out fails, with
    its hooks told (a snapshot asked of it fails with the reason). Left queued, it would go to
    the NEXT machine, where a sync meant for the old one could snapshot the new machine's
    still-empty workspace before its restore. Called in a transaction."""
    # Flag first, as in _hand_out_commands: a command committed meanwhile is seen below, and
    # one a hook queues sets the flag again.
    Instance.objects.filter(pk=instance.pk).update(has_queued_commands=False)
    queued = AgentCommand.objects.select_for_update().filter(
        instance=instance, standby=None, state=AgentCommand.State.QUEUED
    )
    for command in queued:
        command.state, command.detail, command.finished_at = AgentCommand.State.FAILED, reason, now
        command.save(update_fields=["state", "detail", "finished_at"])
        hook = agent_commands.result_hook(command.kind)
        if hook:
            hook(command, False, reason, {})


def _record_progress(instance_id: str, reports: list[dict]) -> None:
    """Progress of long commands (snapshot, restore) for the apps that queued them."""
    for report in reports:
        command = AgentCommand.objects.filter(
            instance_id=instance_id, standby=None, pk=report["id"], state=AgentCommand.State.SENT
        ).first()
        hook = command and agent_commands.progress_hook(command.kind)
        if hook:
            with transaction.atomic():
                hook(command, report)


def _record_sync(instance_id: str, report: dict, now: datetime) -> None:
    """The agent synced the workspace: remember the newest synced snapshot and the lag."""
    with transaction.atomic():
        instance = Instance.objects.select_for_update().filter(pk=instance_id).first()
        if instance is None:
            return
        if report.get("snapshot_id"):
            instance.last_sync_at = report.get("synced_at") or now
            instance.last_sync_snapshot_id = report["snapshot_id"]
        instance.sync_lag_seconds = report.get("lag_seconds")
        instance.save(update_fields=["last_sync_at", "last_sync_snapshot_id", "sync_lag_seconds"])
        for hook in agent_commands.sync_hooks():
            hook(instance, report)
