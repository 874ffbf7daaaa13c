"""Domain errors of snapshots; the API handler turns them into JSON with `code`."""

from dumont.exceptions import DumontError


class InstanceNotRunning(DumontError):
    code = "instance_not_running"
    status_code = 409
    default_detail = "Only a running instance's workspace can be snapshotted."


class SnapshotNotReady(DumontError):
    code = "snapshot_not_ready"
    status_code = 409
    default_detail = "Only a completed snapshot can be restored."


class SnapshotBusy(DumontError):
    code = "snapshot_busy"
    status_code = 409
    default_detail = "The snapshot is being taken or restored; try again when it is done."
