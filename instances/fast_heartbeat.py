"""The heartbeat's fast lane: an ASGI app in front of Django for POST /api/agent/heartbeat.

Django runs sync views on a thread per request under ASGI, and its request, middleware and DRF
machinery cost several times the beat's one SQL statement. On Postgres this app answers the
common beat (valid body, no command results) straight from the event loop with a psycopg async
pool and the same statement as the Django view (instances/heartbeats.py). Everything else goes
to the Django view unchanged, which is the definition of the endpoint: beats with command
results, malformed bodies, SQLite, and beats that still have work (a booting machine, queued
commands; that part runs through the same service as the view).
"""

import json
import logging

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.utils import timezone

from instances import agent_channel, heartbeats

logger = logging.getLogger(__name__)

PATH = "/api/agent/heartbeat"
MAX_BODY_BYTES = 64 * 1024


class HeartbeatFastLane:
    """ASGI middleware: serve plain beats itself, pass every other request to `app`."""

    def __init__(self, app):
        self.app = app
        self.pool = None
        self.enabled = connection.vendor == "postgresql" and settings.HEARTBEAT_FAST_LANE

    async def __call__(self, scope, receive, send):
        if not (
            self.enabled
            and scope["type"] == "http"
            and scope["path"] == PATH
            and scope["method"] == "POST"
        ):
            return await self.app(scope, receive, send)
        body = await _read_body(receive)
        beat_input = _plain_beat(scope, body)
        if beat_input is None:
            return await self.app(scope, _replay(body, receive), send)
        token, percent, in_use = beat_input
        now = timezone.now()
        pool = await self._pool()
        parameters = heartbeats.ingest_parameters(token, percent, now, in_use=in_use)
        async with pool.connection() as conn:
            cursor = await conn.execute(heartbeats.INGEST_SQL, parameters)
            beat = heartbeats.beat_of(await cursor.fetchone())
        if beat is None:
            return await _respond(send, 401, {"code": "invalid_token", "detail": _UNKNOWN})
        if agent_channel.needs_completion(beat):
            reply = await sync_to_async(agent_channel.complete_heartbeat)(beat, [], now)
            status, commands = reply.status, reply.commands
        else:
            status, commands = beat.status, []
        await _respond(
            send,
            200,
            {
                "instance_id": beat.instance_id,
                "status": status,
                "interval_seconds": settings.AGENT_HEARTBEAT_SECONDS,
                "commands": commands,
            },
        )

    async def _pool(self):
        if self.pool is None:
            from psycopg_pool import AsyncConnectionPool

            database = settings.DATABASES["default"]
            self.pool = AsyncConnectionPool(
                conninfo="",
                kwargs={
                    "dbname": database["NAME"],
                    "user": database.get("USER") or None,
                    "password": database.get("PASSWORD") or None,
                    "host": database.get("HOST") or None,
                    "port": database.get("PORT") or None,
                    "autocommit": True,
                },
                min_size=1,
                max_size=settings.HEARTBEAT_FAST_LANE_POOL_SIZE,
                open=False,
            )
            await self.pool.open()
        return self.pool


_UNKNOWN = "Unknown or retired agent token: 'Authorization: Bearer dia_...'."


def _plain_beat(scope, body: bytes) -> tuple[str, float, bool] | None:
    """(token, utilisation, in use) of a beat the fast lane may serve, else None (Django
    serves it)."""
    token = ""
    for name, value in scope["headers"]:
        if name == b"authorization":
            parts = value.split()
            if len(parts) == 2 and parts[0].lower() == b"bearer":
                token = parts[1].decode("ascii", errors="replace")
    if not token.startswith("dia_") or body is None:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or any(
        data.get(report) for report in ("command_results", "command_progress", "sync")
    ):
        return None  # reports other apps must hear about: the Django view handles them
    percent = data.get("gpu_utilization_percent")
    if isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 <= percent <= 100:
        return None
    activity = data.get("activity")
    if activity is not None and not _is_plain_activity(activity):
        return None
    return token, float(percent), heartbeats.is_in_use(activity)


def _is_plain_activity(activity) -> bool:
    """An activity report as the agent sends it; anything else gets the view's 400."""
    if not isinstance(activity, dict) or set(activity) - set(ACTIVITY_FIELDS):
        return False
    return all(
        isinstance(activity[name], kind) and not (kind is not bool and activity[name] < 0)
        for name, kind in ACTIVITY_FIELDS.items()
        if activity.get(name) is not None
    )


ACTIVITY_FIELDS = {
    "workspace_changed": bool,
    "interactive_sessions": int,
    "network_bytes_per_second": int | float,
}


async def _read_body(receive) -> bytes | None:
    """The request body, or None past MAX_BODY_BYTES (Django then answers it)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > MAX_BODY_BYTES:
            return None
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes | None, receive):
    """A receive() that gives Django the body already read, then the real connection's events
    (Django listens for the disconnect while the view runs)."""
    sent = False

    async def replayed():
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body or b"", "more_body": False}

    return replayed


async def _respond(send, status: int, payload: dict) -> None:
    content = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(content))]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="agent"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})
