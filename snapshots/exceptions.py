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


# --- The storage gateway (snapshots/gateway.py) ----------------------------------------------


class InvalidStorageToken(DumontError):
    code = "invalid_token"
    status_code = 401
    default_detail = "Unknown, tampered or expired storage token: 'Authorization: Bearer dst_...'."


class InvalidObjectKey(DumontError):
    code = "invalid_key"
    default_detail = "Not an object key of a repository."


class AppendOnly(DumontError):
    code = "append_only"
    status_code = 403
    default_detail = "Machines may add objects, not delete them (only leases under locks/)."


class ObjectAlreadyExists(DumontError):
    code = "object_exists"
    status_code = 412
    default_detail = "An object is already stored under this key; objects are never replaced."
