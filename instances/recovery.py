"""Keeping the workspace across machines: hibernation with a final sync, waking or recovering
on a new machine that restores the latest sync, and failover when a spot GPU is lost.

The workspace lives in the tenant's snapshot repository (snapshots/, continuous sync). A machine
can therefore be released on hibernation and replaced after an interruption: the new machine's
agent restores the newest sync before the instance is `running` again. Where no sync exists the
disk is kept (hibernation stops instead of releasing), so nothing is released unsaved.

Failover: running → failing_over (the lost machine is destroyed: no split brain, no bill) →
[on_standby, when the plan has a standby] → recovering (steps.recover rents a new GPU avoiding
the failed host) → running once the latest sync is restored. Each failover records RPO and RTO
(models.Failover).
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from instances import standby, tasks_queue
from instances.commands import abandon_queued_commands, queue_command
from instances.exceptions import InvalidTransition
from instances.models import AgentCommand, Failover, Instance, Standby
from instances.spot_hooks import record_interruption
from instances.transitions import transition

logger = logging.getLogger(__name__)
Status = Instance.Status

FINAL_SYNC = "final_sync"  # the agent syncs now and reports the snapshot id
RESTORE_LATEST = "restore_latest"  # the agent restores a sync into its workspace
BOOTING = {Status.PROVISIONING, Status.WAKING, Status.RECOVERING}


def _seconds(since: datetime | None, until: datetime) -> float | None:
    return None if since is None else round((until - since).total_seconds(), 3)


# --- A machine reports in ------------------------------------------------------------------


def agent_booted(instance_id: str) -> str:
    """First beats of a booting machine: restore the workspace if it must (the newest sync of a
    woken or recovered instance, the snapshot a new instance was restored from), else run.
    The instance stays in its booting status until the restore is done. Returns the status the
    agent is told."""
    with transaction.atomic():
        instance = Instance.objects.select_for_update().get(pk=instance_id)
        if instance.status not in BOOTING:
            return instance.status
        if instance.status == Status.RECOVERING and standby.demote_if_serving(instance):
            return instance.status  # the standby's final sync first; its result restores
        if not instance.needs_restore:
            transition(
                instance,
                Status.RUNNING,
                reason="agent reported in",
                actor="agent",
                is_on_standby=False,
            )
            _serving_again(instance)
            return Status.RUNNING
        pending = AgentCommand.objects.filter(
            instance=instance,
            kind=RESTORE_LATEST,
            state__in=[AgentCommand.State.QUEUED, AgentCommand.State.SENT],
        )
        if not pending.exists():
            queue_command(
                instance,
                RESTORE_LATEST,
                {
                    "snapshot_id": instance.restore_snapshot_id,
                    "instance_tag": f"instance:{instance.pk}",
                },
            )
            # Not running yet: users would find a workspace still being written. Say why.
            Instance.objects.filter(pk=instance.pk).update(
                status_reason="machine up; restoring the workspace"
            )
        return instance.status


def restore_finished(command: AgentCommand, ok: bool, detail: str, result: dict) -> None:
    """Command hook: the new machine restored the workspace (→ running), or could not (→ error:
    its machine is stopped, and nothing was billed since it never ran)."""
    instance = Instance.objects.select_for_update().get(pk=command.instance_id)
    if instance.status not in BOOTING:
        return
    if not ok:
        transition(
            instance,
            Status.ERROR,
            reason=f"restoring the workspace failed: {detail}"[:300],
            actor="agent",
        )
        return
    failover = Failover.objects.filter(instance=instance, status=Failover.Status.IN_PROGRESS)
    failover = failover.select_for_update().first()
    if failover is not None:
        measured_rpo(failover, result)
    restored = str(result.get("snapshot_id") or instance.restore_snapshot_id)
    reason = f"workspace restored from sync {restored[:12]}"
    if failover is not None:
        back = (timezone.now() - failover.interrupted_at).total_seconds()
        served = failover.rto_standby_seconds
        reason += f"; GPU back {back:.1f} s after the interruption"
        if served is not None:
            reason += f" (standby served after {served:.1f} s)"
        if failover.rpo_seconds is not None:
            reason += f"; RPO {failover.rpo_seconds:.1f} s"
    transition(
        instance,
        Status.RUNNING,
        reason=reason,
        actor="agent",
        needs_restore=False,
        is_on_standby=False,
        # The workspace is that sync, as of now: nothing since is at risk yet.
        last_sync_at=timezone.now(),
        last_sync_snapshot_id=restored[:64],
    )
    _serving_again(instance)


def measured_rpo(failover: Failover, result: dict) -> None:
    """The sync a machine actually restored may be newer than the one the API knew of at the
    interruption (its report was still on its way): the RPO is the age of that sync."""
    taken = parse_datetime(str(result.get("snapshot_time") or ""))
    if taken is None or (failover.last_sync_at and taken <= failover.last_sync_at):
        return
    failover.last_sync_at = taken
    failover.restored_snapshot_id = str(result.get("snapshot_id", ""))[:64]
    failover.rpo_seconds = max(0.0, round((failover.interrupted_at - taken).total_seconds(), 3))
    failover.save(update_fields=["last_sync_at", "restored_snapshot_id", "rpo_seconds"])


def _serving_again(instance: Instance) -> None:
    failover = Failover.objects.filter(instance=instance, status=Failover.Status.IN_PROGRESS)
    failover = failover.select_for_update().first()
    if failover is None:
        return
    now = timezone.now()
    failover.status = Failover.Status.COMPLETED
    failover.gpu_serving_at = now
    failover.rto_gpu_seconds = _seconds(failover.interrupted_at, now)
    failover.new_provider_id, failover.new_region = instance.provider_id, instance.region
    failover.save()


# --- Hibernation ---------------------------------------------------------------------------


def start_hibernation(instance: Instance) -> None:
    """In the hibernate transaction: ask the agent for a final sync; the stop step follows its
    result (or, if the agent never answers, reconcile's retry of the step)."""
    queue_command(instance, FINAL_SYNC)


def final_sync_finished(command: AgentCommand, ok: bool, detail: str, result: dict) -> None:
    """Command hook: remember the final sync, then stop or release the machine."""
    if ok and result.get("snapshot_id"):
        Instance.objects.filter(pk=command.instance_id).update(
            last_sync_snapshot_id=str(result["snapshot_id"])[:64],
            last_sync_at=timezone.now(),
            sync_lag_seconds=0,
        )
    tasks_queue.after_commit("stop", command.instance_id)


def final_sync_of(instance: Instance) -> AgentCommand | None:
    return (
        AgentCommand.objects.filter(
            instance=instance, kind=FINAL_SYNC, created_at__gte=instance.status_changed_at
        )
        .order_by("-created_at")
        .first()
    )


def is_waiting_for_final_sync(instance: Instance, now: datetime) -> bool:
    command = final_sync_of(instance)
    if command is None or command.state in (
        AgentCommand.State.SUCCEEDED,
        AgentCommand.State.FAILED,
    ):
        return False
    timeout = timedelta(seconds=settings.FINAL_SYNC_TIMEOUT_SECONDS)
    return now - command.created_at < timeout


def can_release(instance: Instance) -> bool:
    """Whether the machine may be released: the final sync of this hibernation succeeded."""
    command = final_sync_of(instance)
    return command is not None and command.state == AgentCommand.State.SUCCEEDED


# --- Failover --------------------------------------------------------------------------------


def fail_over(instance_id: str, *, reason: str, at: datetime | None = None) -> Failover | None:
    """The running instance lost its GPU: record the failover, drop the machine, recover."""
    at = at or timezone.now()
    with transaction.atomic():
        instance = Instance.objects.select_for_update().get(pk=instance_id)
        if instance.status != Status.RUNNING:
            return None
        lost_machine = instance.provider_id
        failover = Failover.objects.create(
            tenant_id=instance.tenant_id,
            instance=instance,
            reason=reason[:300],
            interrupted_at=at,
            last_sync_at=instance.last_sync_at,
            restored_snapshot_id=instance.last_sync_snapshot_id,
            rpo_seconds=_seconds(instance.last_sync_at, at),
            failed_provider_id=lost_machine,
            failed_offer_id=instance.offer_id,
            failed_region=instance.region,
        )
        rpo = f"{failover.rpo_seconds:.1f} s" if failover.rpo_seconds is not None else "no sync"
        transition(
            instance,
            Status.FAILING_OVER,
            reason=f"{reason}; last sync {rpo} before",
            actor="failover",
            provider_id="",
            agent_token_hash="",
            needs_restore=bool(instance.last_sync_snapshot_id),
            restore_snapshot_id=instance.last_sync_snapshot_id,
        )
        if lost_machine:
            abandon_queued_commands(instance, f"the machine was lost: {reason}"[:300], at)
            tasks_queue.after_commit("destroy_machine", lost_machine)
        # With a healthy standby, its promotion sends the recover step (users are served
        # first); without one, recover at once.
        if not standby.promote_for(instance, at):
            tasks_queue.after_commit("recover", instance.pk)
    return failover


def machine_vanished_while_booting(instance_id: str, provider_id: str, state: str) -> str:
    """The machine a booting instance waits for is gone (taken back by the market, destroyed)
    before its agent reported in: forget it and look again under a new provision key. Returns
    the status whose step must run again ("" when the instance has moved on)."""
    with transaction.atomic():
        instance = Instance.objects.select_for_update().get(pk=instance_id)
        if instance.status not in BOOTING or instance.provider_id != provider_id:
            return ""
        fields = {
            "provider_id": "",
            "agent_token_hash": "",
            "status_reason": f"its new machine was {state} before it booted; looking again",
            **new_provision_key(instance),
        }
        if instance.last_sync_snapshot_id and not instance.needs_restore:
            # A waking instance's stopped disk is gone with it: the new machine restores.
            fields.update(needs_restore=True, restore_snapshot_id=instance.last_sync_snapshot_id)
        Instance.objects.filter(pk=instance.pk).update(**fields)
    logger.info("%s: machine %s %s while booting; replacing it", instance_id, provider_id, state)
    return instance.status


def new_provision_key(instance: Instance) -> dict:
    """Fields for a transition that will create a new machine: a key never used before, saved
    with the status so a retried step can only find the machine this attempt made."""
    attempt = instance.provision_attempts + 1
    return {"provision_attempts": attempt, "provision_key": f"{instance.pk}-{attempt}"}


def check_machine_lost(
    instance: Instance, machine_state: str, *, at: datetime | None = None
) -> Failover | None:
    """The provider reports the running instance's machine lost (seen by reconcile, or asked
    at once after a simulated interruption, which says when it happened: `at`)."""
    at = at or timezone.now()
    if machine_state == "interrupted":
        record_interruption(instance, at)
    try:
        return fail_over(
            instance.pk, reason=f"the provider reports the machine {machine_state}", at=at
        )
    except InvalidTransition:
        return None


# --- The standby's part in a failover ------------------------------------------------------


def promoted(command: AgentCommand, ok: bool, detail: str, result: dict) -> None:
    """Command hook: the standby caught up and serves (→ on_standby), or could not."""
    standby = Standby.objects.select_for_update().get(pk=command.standby_id)
    instance = Instance.objects.select_for_update().get(pk=command.instance_id)
    if not ok:
        logger.warning("standby %s could not serve %s: %s", standby.pk, instance.pk, detail)
        if instance.status == Status.FAILING_OVER:
            tasks_queue.after_commit("recover", instance.pk)
        return
    now = timezone.now()
    standby.status = Standby.Status.SERVING
    standby.followed_snapshot_id = str(result.get("snapshot_id", standby.followed_snapshot_id))
    standby.save(update_fields=["status", "followed_snapshot_id"])
    failover = Failover.objects.filter(instance=instance, status=Failover.Status.IN_PROGRESS)
    failover = failover.select_for_update().first()
    if failover is not None:
        measured_rpo(failover, result)
        failover.standby_serving_at = now
        failover.rto_standby_seconds = round((now - failover.interrupted_at).total_seconds(), 3)
        failover.save(update_fields=["standby_serving_at", "rto_standby_seconds"])
    Instance.objects.filter(pk=instance.pk).update(is_on_standby=True)
    if instance.status == Status.FAILING_OVER:
        where = f"{standby.region} CPU standby"
        transition(instance, Status.ON_STANDBY, reason=f"serving on the {where}", actor="failover")
        tasks_queue.after_commit("recover", instance.pk)


def demoted(command: AgentCommand, ok: bool, detail: str, result: dict) -> None:
    """Command hook: the standby's final sync is the one the new GPU restores."""
    standby = Standby.objects.select_for_update().get(pk=command.standby_id)
    instance = Instance.objects.select_for_update().get(pk=command.instance_id)
    snapshot_id = str(result.get("snapshot_id") or "") if ok else ""
    if snapshot_id:
        instance.restore_snapshot_id = snapshot_id
        instance.last_sync_snapshot_id = snapshot_id
        instance.needs_restore = True
        instance.save(
            update_fields=["restore_snapshot_id", "last_sync_snapshot_id", "needs_restore"]
        )
    else:
        logger.warning(
            "standby %s final sync failed (%s); restoring the GPU's last", standby, detail
        )
    standby.status = Standby.Status.FOLLOWING
    standby.save(update_fields=["status"])
    if instance.status == Status.RECOVERING and instance.provider_id and instance.needs_restore:
        # The standby's final sync exactly (no instance_tag: not "the newest").
        queue_command(instance, RESTORE_LATEST, {"snapshot_id": instance.restore_snapshot_id})


# --- Transition hooks ------------------------------------------------------------------------


def stop_machine_in_error(instance: Instance, event) -> None:
    """Transition hook: an instance in `error` must not leave a GPU running unbilled; its
    machine is stopped (disk kept, for the person or the retry that acts next)."""
    if event.to_status == Status.ERROR and instance.provider_id:
        tasks_queue.after_commit("stop_machine", f"{instance.provider}:{instance.provider_id}")


def close_abandoned_failover(instance: Instance, event) -> None:
    """Transition hook: a failover whose instance ends in `error` or is deleted before a GPU
    serves it again is recorded `failed` (it never stays `in_progress`)."""
    if event.to_status in (Status.ERROR, Status.DELETING, Status.DELETED):
        Failover.objects.filter(instance=instance, status=Failover.Status.IN_PROGRESS).update(
            status=Failover.Status.FAILED
        )
