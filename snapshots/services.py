"""Every change to snapshots and restores goes through these functions.

A snapshot is taken by the instance's agent: we queue a `snapshot` command, the agent runs the
engine on its workspace, reports progress in its heartbeats and the engine's snapshot id at the
end (the command hooks below). A restore creates a new instance (any GPU, any region) that must
restore the snapshot before it runs: its agent restores it as soon as it reports in, exactly as
a woken machine restores its newest sync (instances/recovery.py), and the instance becomes
`running` only when every file is there (or `error`, with the reason, when the restore fails).
Every running instance also gets a `sync` command: its agent snapshots the workspace
incrementally every few seconds, which is what failover and hibernation restore from.
"""

from dataclasses import replace
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing.storage import report_stored_bytes
from dumont.live import push_after_commit
from instances.commands import queue_command
from instances.models import AgentCommand, Instance, InstanceEvent
from instances.moves import InstanceRequest, create_instance
from instances.recovery import RESTORE_LATEST
from snapshots import repositories, storage_tokens
from snapshots.exceptions import InstanceNotRunning, SnapshotBusy, SnapshotNotReady
from snapshots.models import Restore, Snapshot, SnapshotRepository
from webhooks.services import emit

SNAPSHOT_COMMAND = "snapshot"
RESTORE_LATEST_COMMAND = RESTORE_LATEST  # a new machine restoring its instance's workspace
SYNC_COMMAND = "sync"
SYNC_TAG = "sync"
IN_PROGRESS = (Snapshot.Status.PENDING, Snapshot.Status.RUNNING)


def instance_tag(instance_id: str) -> str:
    return f"instance:{instance_id}"


def snapshot_tag(snapshot_id: str) -> str:
    return f"snapshot:{snapshot_id}"


def snapshot_payload(snapshot: Snapshot) -> dict:
    """What live events and webhooks say about a snapshot."""
    return {
        "id": snapshot.pk,
        "name": snapshot.name,
        "status": snapshot.status,
        "instance_id": snapshot.instance_id,
        "bytes_done": snapshot.bytes_done,
        "bytes_total": snapshot.bytes_total,
        "eta_seconds": snapshot.eta_seconds,
        "size_bytes": snapshot.size_bytes,
        "added_bytes": snapshot.added_bytes,
        "error": snapshot.error,
    }


# --- Taking a snapshot -----------------------------------------------------------------------


def create_snapshot(instance: Instance, *, name: str = "") -> Snapshot:
    """Record a pending snapshot of a running instance; a task hands the command to its agent."""
    from snapshots import tasks

    with transaction.atomic():
        locked = Instance.objects.select_for_update().get(pk=instance.pk)
        if locked.status != Instance.Status.RUNNING:
            raise InstanceNotRunning(
                f"Instance {locked.pk} is {locked.status}; snapshots need it running."
            )
        snapshot = Snapshot.objects.create(
            tenant_id=locked.tenant_id,
            instance=locked,
            name=name or f"{locked.name}-{timezone.now():%Y%m%d-%H%M%S}",
            source_gpu=locked.gpu,
            source_region=locked.region,
        )
        push_after_commit(snapshot.tenant_id, "snapshot.created", snapshot_payload(snapshot))
        transaction.on_commit(lambda: tasks.start_snapshot.delay(snapshot.tenant_id, snapshot.pk))
    return snapshot


def start_snapshot(snapshot_id: str) -> None:
    """Make sure the tenant's repository exists, then queue the agent's `snapshot` command."""
    snapshot = Snapshot.objects.get(pk=snapshot_id)
    repositories.ensure_repository(snapshot.tenant_id)
    with transaction.atomic():
        snapshot = Snapshot.objects.select_for_update().get(pk=snapshot_id)
        if snapshot.status != Snapshot.Status.PENDING or snapshot.command_id:
            return  # a retried task: already handed out, or cancelled
        instance = snapshot.instance
        if instance is None or instance.status != Instance.Status.RUNNING:
            _fail(snapshot, "the instance stopped running before the snapshot started")
            return
        snapshot.command = queue_command(
            instance,
            SNAPSHOT_COMMAND,
            {
                "snapshot_id": snapshot.pk,
                "tags": [snapshot_tag(snapshot.pk), instance_tag(instance.pk)],
            },
        )
        snapshot.save(update_fields=["command"])


def _fail(snapshot: Snapshot, error: str) -> None:
    snapshot.status = Snapshot.Status.FAILED
    snapshot.error = error[:2000]
    snapshot.completed_at = timezone.now()
    snapshot.save(update_fields=["status", "error", "completed_at"])
    payload = snapshot_payload(snapshot)
    emit(snapshot.tenant_id, "snapshot.failed", payload)
    push_after_commit(snapshot.tenant_id, "snapshot.failed", payload)


def _progress_fields(row: Snapshot | Restore, report: dict) -> list[str]:
    row.bytes_done = report.get("bytes_done", row.bytes_done)
    row.bytes_total = report.get("bytes_total", row.bytes_total)
    fields = ["bytes_done", "bytes_total"]
    if isinstance(row, Snapshot):
        row.files_done = report.get("files_done", row.files_done)
        row.files_total = report.get("files_total", row.files_total)
        row.eta_seconds = report.get("eta_seconds")
        fields += ["files_done", "files_total", "eta_seconds"]
    return fields


def snapshot_progress(command: AgentCommand, report: dict) -> None:
    """Command hook: the agent's engine is this far."""
    snapshot = Snapshot.objects.select_for_update().filter(command=command).first()
    if snapshot is None or snapshot.status not in (
        Snapshot.Status.PENDING,
        Snapshot.Status.RUNNING,
    ):
        return
    fields = _progress_fields(snapshot, report)
    if snapshot.status == Snapshot.Status.PENDING:
        snapshot.status, snapshot.started_at = Snapshot.Status.RUNNING, timezone.now()
        fields += ["status", "started_at"]
    snapshot.save(update_fields=fields)
    push_after_commit(snapshot.tenant_id, "snapshot.progress", snapshot_payload(snapshot))


def snapshot_finished(command: AgentCommand, ok: bool, detail: str, result: dict) -> None:
    """Command hook: the agent's engine finished (the engine's snapshot id, or an error)."""
    snapshot = Snapshot.objects.select_for_update().filter(command=command).first()
    if snapshot is None or snapshot.status not in (
        Snapshot.Status.PENDING,
        Snapshot.Status.RUNNING,
    ):
        return
    if not ok or not result.get("snapshot_id"):
        _fail(snapshot, detail or "the agent reported no snapshot")
        return
    summary = result.get("summary") or {}
    snapshot.status = Snapshot.Status.COMPLETED
    snapshot.engine_snapshot_id = str(result["snapshot_id"])[:64]
    snapshot.size_bytes = int(summary.get("bytes", snapshot.bytes_total) or 0)
    snapshot.added_bytes = int(summary.get("added_bytes", 0) or 0)
    snapshot.bytes_done = snapshot.bytes_total = snapshot.size_bytes
    snapshot.eta_seconds = 0
    snapshot.started_at = snapshot.started_at or timezone.now()
    snapshot.completed_at = timezone.now()
    snapshot.save()
    _grow_repository(snapshot.tenant_id, snapshot.added_bytes)
    payload = snapshot_payload(snapshot)
    emit(snapshot.tenant_id, "snapshot.completed", payload)
    push_after_commit(snapshot.tenant_id, "snapshot.completed", payload)


def _grow_repository(tenant_id: int, added_bytes: int) -> None:
    """Count what a backup added at once (billing); maintenance re-measures exactly."""
    if not added_bytes:
        return
    repository = SnapshotRepository.objects.select_for_update().filter(tenant_id=tenant_id).first()
    if repository is None:
        return
    repository.stored_bytes += added_bytes
    repository.save(update_fields=["stored_bytes"])
    report_stored_bytes(tenant_id, repository.stored_bytes)


# --- Deleting -------------------------------------------------------------------------------


def delete_snapshot(snapshot: Snapshot) -> Snapshot:
    """Forget a snapshot; its data goes at the next garbage collection (nothing shared is lost)."""
    from snapshots import tasks

    with transaction.atomic():
        snapshot = Snapshot.objects.select_for_update().get(pk=snapshot.pk)
        if snapshot.status in (Snapshot.Status.DELETING, Snapshot.Status.DELETED):
            return snapshot
        busy = Restore.objects.filter(
            snapshot=snapshot, status__in=[Restore.Status.WAITING, Restore.Status.RUNNING]
        )
        if snapshot.status in IN_PROGRESS or busy.exists():
            raise SnapshotBusy()
        snapshot.status = Snapshot.Status.DELETING
        snapshot.save(update_fields=["status"])
        push_after_commit(snapshot.tenant_id, "snapshot.deleting", snapshot_payload(snapshot))
        transaction.on_commit(lambda: tasks.forget_snapshot.delay(snapshot.tenant_id, snapshot.pk))
    return snapshot


def forget_snapshot(snapshot_id: str) -> None:
    """Remove the snapshot from the repository, collect garbage, re-measure."""
    snapshot = Snapshot.objects.get(pk=snapshot_id)
    if snapshot.status != Snapshot.Status.DELETING:
        return
    if snapshot.engine_snapshot_id:
        repositories.forget(snapshot.tenant_id, [snapshot.engine_snapshot_id])
    Snapshot.objects.filter(pk=snapshot_id).update(
        status=Snapshot.Status.DELETED, deleted_at=timezone.now()
    )
    snapshot.refresh_from_db()
    push_after_commit(snapshot.tenant_id, "snapshot.deleted", snapshot_payload(snapshot))
    measure_repository(snapshot.tenant_id)


def measure_repository(tenant_id: int) -> int:
    stored = repositories.measure(tenant_id)
    report_stored_bytes(tenant_id, stored)
    return stored


# --- Restoring -------------------------------------------------------------------------------


def restore_snapshot(snapshot: Snapshot, request: InstanceRequest, *, actor: str) -> Restore:
    """A NEW instance (any GPU, any region) whose workspace is the snapshot's once it runs."""
    if snapshot.status != Snapshot.Status.COMPLETED:
        raise SnapshotNotReady(f"Snapshot {snapshot.pk} is {snapshot.status}.")
    if not request.name:
        request = replace(request, name=f"{snapshot.name}-restored")
    with transaction.atomic():
        instance = create_instance(snapshot.tenant, request, actor=actor)
        # Its first machine restores the snapshot before the instance runs (recovery).
        Instance.objects.filter(pk=instance.pk).update(
            needs_restore=True, restore_snapshot_id=snapshot.engine_snapshot_id
        )
        restore = Restore.objects.create(
            tenant_id=snapshot.tenant_id,
            snapshot=snapshot,
            instance=instance,
            engine_snapshot_id=snapshot.engine_snapshot_id,
        )
    return restore


def _restore_of(command: AgentCommand) -> Restore | None:
    """The customer's restore that a machine's workspace restore carries out, if any (a wake or a
    failover restores a sync, with no such row)."""
    return (
        Restore.objects.select_for_update()
        .filter(
            instance_id=command.instance_id,
            status__in=[Restore.Status.WAITING, Restore.Status.RUNNING],
        )
        .first()
    )


def restore_progress(command: AgentCommand, report: dict) -> None:
    """Command hook: the restoring machine is this far."""
    restore = _restore_of(command)
    if restore is None:
        return
    fields = _progress_fields(restore, report)
    restore.status, restore.command = Restore.Status.RUNNING, command
    restore.save(update_fields=[*fields, "status", "command"])
    push_after_commit(restore.tenant_id, "snapshot.restore_progress", restore_payload(restore))


def restore_finished(command: AgentCommand, ok: bool, detail: str, result: dict) -> None:
    """Command hook: the machine restored the snapshot (its instance now runs) or could not (its
    instance is in `error` with the same reason)."""
    restore = _restore_of(command)
    if restore is None:
        return
    restore.command = command
    restore.status = Restore.Status.COMPLETED if ok else Restore.Status.FAILED
    restore.error = "" if ok else detail[:2000]
    restore.completed_at = timezone.now()
    if ok:
        restore.bytes_done = restore.bytes_total = int(result.get("bytes", restore.bytes_total))
    restore.save()
    payload = restore_payload(restore)
    if ok:
        emit(restore.tenant_id, "snapshot.restored", payload)
    push_after_commit(
        restore.tenant_id, "snapshot.restored" if ok else "snapshot.restore_failed", payload
    )


def restore_payload(restore: Restore) -> dict:
    return {
        "id": restore.pk,
        "snapshot_id": restore.snapshot_id,
        "instance_id": restore.instance_id,
        "status": restore.status,
        "bytes_done": restore.bytes_done,
        "bytes_total": restore.bytes_total,
        "error": restore.error,
    }


# --- Hooks called by instances ------------------------------------------------------------------


def instance_transitioned(instance: Instance, event: InstanceEvent) -> None:
    """Transition hook: a machine that starts running (its workspace restored, if it had one to
    restore) gets continuous sync."""
    if event.to_status != Instance.Status.RUNNING:
        return
    if instance.last_sync_snapshot_id:
        # It synced before (a wake, a failover), so its repository exists: sync at once. The
        # command rides on the reply to the very beat that reported the restore.
        _queue_sync(instance)
        return
    # A first sync needs the tenant's repository, which may not exist yet: a task makes sure
    # of it (store I/O does not belong in this transaction), then sends the command.
    from snapshots import tasks

    tenant_id, instance_id = instance.tenant_id, instance.pk
    transaction.on_commit(lambda: tasks.start_sync.delay(tenant_id, instance_id))


def start_sync(instance_id: str) -> None:
    """Make sure the repository exists, then tell a running instance's agent to sync.

    The agent keeps these settings across its own restarts; a new machine (wake, failover)
    gets them again at its next `running`. It syncs only once its restores are done.
    """
    instance = Instance.objects.get(pk=instance_id)
    repositories.ensure_repository(instance.tenant_id)
    with transaction.atomic():
        instance = Instance.objects.select_for_update().get(pk=instance_id)
        if instance.status == Instance.Status.RUNNING:
            _queue_sync(instance)


def _queue_sync(instance: Instance) -> None:
    queue_command(
        instance,
        SYNC_COMMAND,
        {
            "interval_seconds": settings.SNAPSHOT_SYNC_INTERVAL_SECONDS,
            "tags": [SYNC_TAG, instance_tag(instance.pk)],
        },
    )


def repository_arguments(command: AgentCommand) -> dict:
    """Arguments hook, added at hand-out and never stored: the storage gateway, a short-lived
    token for the machine the command goes to, and the repository secret (no platform keys)."""
    machine = storage_tokens.machine_of_command(command)
    return storage_tokens.machine_access(command.tenant_id, machine)


def sync_reported(instance: Instance, report: dict) -> None:
    """Sync hook: a sync that stored new data grows the tenant's repository (billing)."""
    _grow_repository(instance.tenant_id, int(report.get("added_bytes") or 0))


def maintain_repository(tenant_id: int, now: datetime | None = None) -> int:
    """Keep the newest SNAPSHOT_SYNC_KEEP syncs of each live instance, forget the rest and
    the syncs of deleted instances, collect garbage, re-measure. Returns forgotten count."""
    live = set(
        Instance.objects.for_tenant(tenant_id)
        .exclude(status=Instance.Status.DELETED)
        .values_list("pk", flat=True)
    )
    forgotten = repositories.forget_old_syncs(
        tenant_id, SYNC_TAG, live, keep=settings.SNAPSHOT_SYNC_KEEP, now=now
    )
    measure_repository(tenant_id)
    return forgotten
