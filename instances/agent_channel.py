"""What an agent's heartbeat does: the beat is stored (heartbeats.py, one SQL statement), a
booting machine runs or restores its workspace (recovery.py), command results, progress and
syncs are recorded, and queued commands go out in the reply (commands.py). The API's heartbeat
view and the ASGI fast lane (fast_heartbeat.py) call these. A standby's agent beats through
standby.record_heartbeat.
"""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from instances import heartbeats
from instances.commands import finish_commands, hand_out_commands, record_progress, sync_hooks
from instances.exceptions import UnknownAgent
from instances.models import Instance
from instances.recovery import BOOTING, agent_booted


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
        record_progress(beat.instance_id, command_progress)
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
        status = agent_booted(beat.instance_id)
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
    commands = hand_out_commands(beat.instance_id, now) if queued else []
    return HeartbeatReply(
        instance_id=beat.instance_id,
        status=status,
        interval_seconds=settings.AGENT_HEARTBEAT_SECONDS,
        commands=commands,
    )


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
        for hook in sync_hooks():
            hook(instance, report)
