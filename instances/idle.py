"""Auto-hibernation: running GPUs idle under the tenant's threshold for its idle minutes.

One query finds them all, however many instances there are: the heartbeat statement keeps
`last_busy_at` (the last beat that found the machine in use: the GPU at or above the tenant's
threshold, or the workspace changing, someone logged in, the network busy), so "idle for N
minutes" is "the later of `last_busy_at` and `running_since` < now - N minutes", read against the
tenant's settings in the same statement (no settings row: the defaults, on at 5 % for 5 minutes).
`running_since` moves at every wake: a woken machine gets its full idle minutes again, whatever
it did before it hibernated. Only instances whose agent is beating count: a silent machine is a
failover's business, not hibernation's.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from accounts.models import TenantSettings
from instances.models import Instance

DEFAULT_IDLE_MINUTES = 5
_INSTANCE = Instance._meta.db_table
_SETTINGS = TenantSettings._meta.db_table

# The deadline arithmetic differs by database: Postgres intervals, SQLite julian days; so does
# the later of two times (Postgres' GREATEST skips a NULL, SQLite's MAX does not).
_LAST_USE = {
    "postgresql": "GREATEST(i.last_busy_at, i.running_since)",
    "sqlite": "MAX(COALESCE(i.last_busy_at, i.running_since), i.running_since)",
}
_IDLE_SINCE = {
    "postgresql": "%(now)s - make_interval(mins => COALESCE(s.idle_minutes, {default}))",
    "sqlite": "datetime(%(now)s, '-' || COALESCE(s.idle_minutes, {default}) || ' minutes')",
}


def idle_instance_ids(now: datetime | None = None) -> list[str]:
    """Running instances with auto-hibernation on and no busy beat for their idle minutes."""
    now = now or timezone.now()
    deadline = _IDLE_SINCE[connection.vendor].format(default=DEFAULT_IDLE_MINUTES)
    last_use = _LAST_USE[connection.vendor]
    sql = f"""
        SELECT i.id FROM {_INSTANCE} i
          LEFT JOIN {_SETTINGS} s ON s.tenant_id = i.tenant_id
         WHERE i.status = %(running)s
           AND COALESCE(s.auto_hibernate, TRUE)
           AND i.last_heartbeat_at >= %(beating_since)s
           AND {last_use} < {deadline}
    """
    parameters = {
        "now": now if connection.vendor == "postgresql" else now.strftime("%Y-%m-%d %H:%M:%S"),
        "running": Instance.Status.RUNNING,
        "beating_since": now - timedelta(seconds=settings.FAILOVER_HEARTBEAT_TIMEOUT_SECONDS),
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, parameters)
        return [row[0] for row in cursor.fetchall()]
