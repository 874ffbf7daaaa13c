"""Warm CPU standbys: a small VM per instance (plans with standby) that follows its workspace.

Its agent restores each new sync as it appears (`follow`), so at a failover it only has to catch
up on the last one (`promote`) before users are served there; it syncs what they do there. When
the new GPU is up, the standby makes a final sync (`demote`), the GPU restores it, and the
standby goes back to following. The standby is created when its instance first runs, stopped
while it hibernates, deleted with it, recreated in the next region when its VM is lost, and its
hours are billed (billing.metering standby intervals).

What the instance does on the results of `promote` and `demote` is the failover's (recovery.py).
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from billing import metering as billing_metering
from billing.entitlements import entitlements_of
from instances import tasks_queue
from instances.agent_tokens import hash_agent_token, standby_token
from instances.commands import arguments_for, finish_commands
from instances.exceptions import UnknownAgent
from instances.models import AgentCommand, Instance, InstanceEvent, Standby
from instances.providers import get_standby_provider
from instances.providers.base import MachineNotFound, MachineState, StandbySpec
from spot.catalog import REGIONS

logger = logging.getLogger(__name__)
Status = Instance.Status

FOLLOW = "follow"
PROMOTE = "promote"
DEMOTE = "demote"
LIVE = (Standby.Status.CREATING, Standby.Status.FOLLOWING, Standby.Status.SERVING)
SYNC_TAG = "sync"


def live_standby(instance: Instance) -> Standby | None:
    return Standby.objects.filter(instance=instance, status__in=LIVE).first()


def _billing_subject(standby: Standby) -> str:
    return f"standby-{standby.pk}"


def next_region(region: str) -> str:
    """The region after `region` in REGIONS (the seeds' multi-region backup order)."""
    position = REGIONS.index(region) if region in REGIONS else -1
    return REGIONS[(position + 1) % len(REGIONS)]


def queue_standby_command(standby: Standby, kind: str, args: dict | None = None) -> AgentCommand:
    return AgentCommand.objects.create(
        tenant_id=standby.tenant_id,
        instance_id=standby.instance_id,
        standby=standby,
        kind=kind,
        args={"instance_tag": f"instance:{standby.instance_id}", **(args or {})},
    )


# --- Lifecycle ---------------------------------------------------------------------------------


def instance_transitioned(instance: Instance, event: InstanceEvent) -> None:
    """Transition hook: the standby follows its instance's life."""
    if event.to_status == Status.RUNNING:
        standby = Standby.objects.filter(instance=instance, status=Standby.Status.STOPPED).first()
        if standby is not None:
            tasks_queue.after_commit("start_standby", str(standby.pk))
        elif live_standby(instance) is None and entitlements_of(instance.tenant_id)["has_standby"]:
            tasks_queue.after_commit("create_standby", instance.pk)
    elif event.to_status == Status.HIBERNATED:
        for standby in Standby.objects.filter(instance=instance, status__in=LIVE):
            tasks_queue.after_commit("stop_standby", str(standby.pk))
    elif event.to_status in (Status.DELETING, Status.DELETED):
        for standby in Standby.objects.filter(instance=instance).exclude(
            status=Standby.Status.DELETED
        ):
            tasks_queue.after_commit("destroy_standby", str(standby.pk))


def create_standby(instance_id: str, region: str = "") -> Standby | None:
    """A standby VM for a running instance, in `region` (default: the instance's own)."""
    instance = Instance.objects.get(pk=instance_id)
    if instance.status in (Status.DELETING, Status.DELETED, Status.ERROR):
        return None
    with transaction.atomic():
        Instance.objects.select_for_update().get(pk=instance_id)
        standby = live_standby(instance)
        if standby is None:
            attempt = Standby.objects.filter(instance=instance).count() + 1
            standby = Standby.objects.create(
                tenant_id=instance.tenant_id,
                instance=instance,
                region=region or instance.region or REGIONS[0],
                provider=settings.STANDBY_PROVIDER,
                provision_key=f"{instance.pk}-standby-{attempt}",
            )
    if standby.provider_id:
        return standby
    token = standby_token(standby.pk, standby.provision_key)
    spec = StandbySpec(
        instance_id=instance.pk,
        region=standby.region,
        disk_gb=instance.disk_gb,
        ssh_public_keys=tuple(instance.ssh_keys.values_list("public_key", flat=True)),
        env={
            "DUMONT_API_URL": settings.DUMONT_PUBLIC_URL,
            "DUMONT_AGENT_TOKEN": token,
            "DUMONT_INSTANCE_ID": instance.pk,
            "DUMONT_HEARTBEAT_SECONDS": str(settings.STANDBY_HEARTBEAT_SECONDS),
        },
    )
    machine = get_standby_provider(standby.provider).create_standby(
        spec, idempotency_key=standby.provision_key
    )
    with transaction.atomic():
        Standby.objects.filter(pk=standby.pk).update(
            provider_id=machine.provider_id,
            price_micros=machine.price_micros_per_hour,
            ssh_host=machine.ssh_host,
            ssh_port=machine.ssh_port or None,
            agent_token_hash=hash_agent_token(token),
        )
        standby.refresh_from_db()
        queue_standby_command(
            standby,
            FOLLOW,
            {"interval_seconds": settings.SNAPSHOT_SYNC_INTERVAL_SECONDS},
        )
        billing_metering.open_standby_interval(
            standby.tenant_id,
            _billing_subject(standby),
            price_micros_per_hour=standby.price_micros or None,
            description=f"CPU standby of {instance.name} in {standby.region}",
        )
    return standby


def stop_standby(standby_id: int) -> None:
    """The instance hibernates: stop the VM (its disk stays) and its bill."""
    standby = Standby.objects.get(pk=standby_id)
    if standby.status not in LIVE:
        return
    if standby.provider_id:
        get_standby_provider(standby.provider).stop(standby.provider_id)
    with transaction.atomic():
        Standby.objects.filter(pk=standby.pk).update(status=Standby.Status.STOPPED)
        billing_metering.close_standby_interval(_billing_subject(standby))


def start_standby(standby_id: int) -> None:
    """The instance runs again: start the VM and bill it again; its agent resumes following."""
    standby = Standby.objects.get(pk=standby_id)
    if standby.status != Standby.Status.STOPPED:
        return
    get_standby_provider(standby.provider).start(standby.provider_id)
    with transaction.atomic():
        Standby.objects.filter(pk=standby.pk).update(status=Standby.Status.CREATING)
        billing_metering.open_standby_interval(
            standby.tenant_id,
            _billing_subject(standby),
            price_micros_per_hour=standby.price_micros or None,
        )


def destroy_standby(standby_id: int) -> None:
    """The instance is deleted: delete the VM and stop its bill."""
    standby = Standby.objects.get(pk=standby_id)
    if standby.status == Standby.Status.DELETED:
        return
    if standby.provider_id:
        get_standby_provider(standby.provider).destroy(standby.provider_id)
    with transaction.atomic():
        Standby.objects.filter(pk=standby.pk).update(
            status=Standby.Status.DELETED, agent_token_hash=""
        )
        billing_metering.close_standby_interval(_billing_subject(standby))


def replace_lost(standby: Standby, reason: str) -> Standby | None:
    """The standby's VM is gone (its region failed): make a new one in the next region."""
    with transaction.atomic():
        updated = Standby.objects.filter(pk=standby.pk, status__in=LIVE).update(
            status=Standby.Status.LOST, agent_token_hash=""
        )
        if not updated:
            return None
        billing_metering.close_standby_interval(_billing_subject(standby))
        if standby.status == Standby.Status.SERVING:
            # Users were on it: the instance is still recovering its GPU; it goes on without.
            Instance.objects.filter(pk=standby.instance_id).update(is_on_standby=False)
    logger.warning("standby %s of %s lost: %s", standby.pk, standby.instance_id, reason)
    if standby.provider_id:
        tasks_queue.send("destroy_standby_machine", f"{standby.provider}:{standby.provider_id}")
    return create_standby(standby.instance_id, region=next_region(standby.region))


def check_standbys(now: datetime) -> list[int]:
    """Reconcile: live standbys whose VM is gone or whose agent went silent are replaced."""
    stale = now - timedelta(seconds=settings.FAILOVER_HEARTBEAT_TIMEOUT_SECONDS)
    replaced = []
    for standby in Standby.objects.filter(status__in=LIVE).exclude(provider_id=""):
        reason = ""
        try:
            machine = get_standby_provider(standby.provider).get(standby.provider_id)
            if machine.state in (MachineState.INTERRUPTED, MachineState.DESTROYED):
                reason = f"its VM is {machine.state.value}"
        except MachineNotFound:
            reason = "its VM is gone"
        if not reason and standby.last_heartbeat_at and standby.last_heartbeat_at < stale:
            reason = "its agent is silent"
        if reason and replace_lost(standby, reason):
            replaced.append(standby.pk)
    return replaced


# --- Failover ---------------------------------------------------------------------------------


def promote_for(instance: Instance, now: datetime) -> bool:
    """In the failover transaction: ask a healthy standby to serve. False: none can."""
    fresh = now - timedelta(seconds=settings.FAILOVER_HEARTBEAT_TIMEOUT_SECONDS)
    standby = Standby.objects.filter(
        instance=instance, status=Standby.Status.FOLLOWING, last_heartbeat_at__gte=fresh
    ).first()
    if standby is None:
        return False
    queue_standby_command(standby, PROMOTE, {"tags": [SYNC_TAG, f"instance:{instance.pk}"]})
    return True


def demote_if_serving(instance: Instance) -> bool:
    """The new GPU is up: if users are on the standby, ask it for a final sync first (the GPU
    restores that). True when the GPU must wait for it."""
    standby = Standby.objects.filter(instance=instance, status=Standby.Status.SERVING).first()
    if standby is None:
        return False
    pending = standby.commands.filter(
        kind=DEMOTE, state__in=[AgentCommand.State.QUEUED, AgentCommand.State.SENT]
    )
    if not pending.exists():
        queue_standby_command(standby, DEMOTE)
    return True


# --- The standby's agent -------------------------------------------------------------------------


def record_heartbeat(
    token: str,
    *,
    command_results: list[dict],
    follow: dict | None,
    sync: dict | None = None,
    now: datetime,
) -> tuple[str, list[dict]]:
    """A beat of a standby's agent: (its status, the commands for it)."""
    standby = Standby.objects.filter(
        agent_token_hash=hash_agent_token(token), status__in=LIVE
    ).first()
    if standby is None:
        raise UnknownAgent()
    fields = {"last_heartbeat_at": now}
    if standby.status == Standby.Status.CREATING:
        fields["status"] = Standby.Status.FOLLOWING
    if follow and follow.get("snapshot_id"):
        fields["followed_snapshot_id"] = str(follow["snapshot_id"])[:64]
        fields["followed_at"] = now
    Standby.objects.filter(pk=standby.pk, status=standby.status).update(**fields)
    if sync and sync.get("snapshot_id") and standby.status == Standby.Status.SERVING:
        # Users work on the standby: its syncs are the instance's newest.
        Instance.objects.filter(pk=standby.instance_id).update(
            last_sync_at=sync.get("synced_at") or now,
            last_sync_snapshot_id=str(sync["snapshot_id"])[:64],
            sync_lag_seconds=sync.get("lag_seconds"),
        )
    if command_results:
        finish_commands(standby.instance_id, command_results, now, standby=standby)
    with transaction.atomic():
        queued = list(
            standby.commands.select_for_update(skip_locked=True).filter(
                state=AgentCommand.State.QUEUED
            )
        )
        AgentCommand.objects.filter(pk__in=[c.pk for c in queued]).update(
            state=AgentCommand.State.SENT, sent_at=now
        )
    commands = [{"id": c.pk, "kind": c.kind, "args": arguments_for(c)} for c in queued]
    standby.refresh_from_db(fields=["status"])
    return standby.status, commands
