"""The agents' hot path: one heartbeat is ONE SQL statement (authenticate + store).

Thousands of agents beat every few seconds, so a beat must not cost an authentication query, an
update and a settings lookup. The statement finds the instance by its agent token's hash (an
indexed column), stores the utilisation and the beat time, moves `last_busy_at` when the machine
is in use (the GPU at or above the tenant's idle threshold, or the other activity the agent
reports: see `is_in_use`), and returns what the reply needs. The idle sweep (idle.py)
then reads `last_heartbeat_at` / `last_busy_at` without scanning any history. UPDATE ... RETURNING
runs on Postgres and on SQLite >= 3.35 (the embedded default).
"""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connection

from accounts.models import TenantSettings
from instances.agent_tokens import AGENT_TOKEN_PREFIX, hash_agent_token
from instances.models import Instance

DEFAULT_BUSY_PERCENT = 5  # TenantSettings' default idle threshold

_INSTANCE = Instance._meta.db_table
_SETTINGS = TenantSettings._meta.db_table
INGEST_SQL = f"""
UPDATE {_INSTANCE}
   SET last_heartbeat_at = %(now)s,
       gpu_utilization_percent = %(percent)s,
       last_busy_at = CASE
           WHEN %(in_use)s OR %(percent)s >= COALESCE(
               (SELECT s.idle_threshold_percent FROM {_SETTINGS} s
                 WHERE s.tenant_id = {_INSTANCE}.tenant_id),
               {DEFAULT_BUSY_PERCENT})
           THEN %(now)s ELSE last_busy_at END
 WHERE agent_token_hash = %(token_hash)s AND status <> %(deleted)s
RETURNING id, tenant_id, status, has_queued_commands
"""


@dataclass(frozen=True)
class Beat:
    instance_id: str
    tenant_id: int
    status: str
    has_queued_commands: bool


def is_in_use(activity: dict | None) -> bool:
    """Whether a beat's `activity` says someone uses the machine, whatever its GPU does: the
    workspace changed since the agent last looked (an upload, a shell writing files), someone is
    logged in, or the network moves more than IDLE_NETWORK_BYTES_PER_SECOND (a download, a
    notebook being served). A machine in use is never auto-hibernated."""
    if not activity:
        return False
    return bool(
        activity.get("workspace_changed")
        or (activity.get("interactive_sessions") or 0) > 0
        or (activity.get("network_bytes_per_second") or 0) >= settings.IDLE_NETWORK_BYTES_PER_SECOND
    )


def ingest_parameters(
    token: str, gpu_utilization_percent: float, now: datetime, *, in_use: bool = False
) -> dict:
    return {
        "now": now,
        "in_use": in_use,
        "percent": float(gpu_utilization_percent),
        "token_hash": hash_agent_token(token),
        "deleted": Instance.Status.DELETED,
    }


def beat_of(row) -> "Beat | None":
    return Beat(row[0], row[1], row[2], bool(row[3])) if row else None


def ingest(
    token: str, gpu_utilization_percent: float, now: datetime, *, in_use: bool = False
) -> Beat | None:
    """Store a beat for the instance that owns `token`; None if no live instance does."""
    if not token.startswith(AGENT_TOKEN_PREFIX):
        return None
    parameters = ingest_parameters(token, gpu_utilization_percent, now, in_use=in_use)
    with connection.cursor() as cursor:
        cursor.execute(INGEST_SQL, parameters)
        return beat_of(cursor.fetchone())
