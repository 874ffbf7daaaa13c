"""Fault drills for live updates: the tenant websocket of a real uvicorn process whose channel
layer's Redis (the drill's own redis-server) idles, is SIGKILLed and restarted, or is away.

What a user notices: an idle socket stays open and gets its events, past the Redis timeouts and
its group's expiry; after a Redis crash the open sockets end with 1013 (try again later), so
the portal reconnects, and the new socket gets events again; a socket asked for while Redis is
away is told 503 `live_unavailable` with Retry-After.
"""

import asyncio
import json
import time

import pytest
from channels_redis.core import RedisChannelLayer
from django.conf import settings
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from conftest import wait_until
from dumont.consumers import CLOSE_TRY_AGAIN_LATER, RETRY_AFTER_SECONDS
from dumont.live import EVENT_MESSAGE_TYPE, tenant_group
from dumont.tests.test_fault_drills import (
    RedisServer,
    _web_process,
    own_redis,  # noqa: F401 (a fixture)
)

# Longer than channels_redis's BZPOPMIN (5 s) twice over, and than the group expiry of the drill
# below twice over.
IDLE_SECONDS = 11
GROUP_EXPIRY_SECONDS = 4
DEFAULT_GROUP_EXPIRY_SECONDS = settings.LIVE_GROUP_EXPIRY_SECONDS


def _live_web(start_process, test_database_url, redis: RedisServer, group_expiry: int) -> str:
    """ws:// address of a web process whose channel layer is on the drill's Redis."""
    url = _web_process(
        start_process,
        test_database_url,
        REDIS_URL=redis.url,
        LIVE_GROUP_EXPIRY_SECONDS=str(group_expiry),
    )
    return url.replace("http://", "ws://") + "/ws/tenant/"


@pytest.fixture
def live_web(own_redis, start_process, test_database_url) -> str:  # noqa: F811 (the fixture)
    return _live_web(start_process, test_database_url, own_redis, DEFAULT_GROUP_EXPIRY_SECONDS)


def _open(address: str, token: str) -> ClientConnection:
    socket = connect(address, additional_headers={"Authorization": f"Bearer {token}"}, legacy=True)
    assert json.loads(socket.recv(timeout=10))["event"] == "connected"
    return socket


def _push(redis: RedisServer, tenant_id: int, data: dict, group_expiry: int) -> None:
    """What a worker does on an instance's change: a group_send on the channel layer (which
    leaves out, for good, the members that joined longer than the group expiry ago)."""
    config = settings.CHANNEL_LAYERS["default"]["CONFIG"]
    layer = RedisChannelLayer(
        hosts=[{"address": redis.url}], prefix=config["prefix"], group_expiry=group_expiry
    )

    async def send() -> None:
        message = {"type": EVENT_MESSAGE_TYPE, "event": "instance.status", "data": data}
        await layer.group_send(tenant_group(tenant_id), message)
        await layer.close_pools()

    asyncio.run(send())


def _pushed_event_arrives(
    socket: ClientConnection,
    redis: RedisServer,
    tenant_id: int,
    group_expiry: int = DEFAULT_GROUP_EXPIRY_SECONDS,
) -> bool:
    data = {"id": 1, "status": "running"}
    _push(redis, tenant_id, data, group_expiry)
    return json.loads(socket.recv(timeout=10)) == {"event": "instance.status", "data": data}


def test_an_idle_socket_stays_open_past_redis_timeouts_and_group_expiry(
    owner,
    own_redis,  # noqa: F811
    start_process,
    test_database_url,
):
    address = _live_web(start_process, test_database_url, own_redis, GROUP_EXPIRY_SECONDS)
    socket = _open(address, owner.token)

    time.sleep(IDLE_SECONDS)

    assert _pushed_event_arrives(socket, own_redis, owner.tenant.id, GROUP_EXPIRY_SECONDS)
    socket.close()


def test_after_a_redis_crash_open_sockets_end_with_1013_and_a_new_socket_gets_events(
    owner,
    own_redis,  # noqa: F811
    live_web,
):
    sockets = [_open(live_web, owner.token) for _ in range(2)]

    own_redis.kill()
    for socket in sockets:
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=20)
        assert closed.value.rcvd.code == CLOSE_TRY_AGAIN_LATER
    own_redis.start()

    # What portal.js does on 1013: reconnect; the process's pooled connections to the dead
    # server must not stand in the way.
    socket = _open(live_web, owner.token)
    assert _pushed_event_arrives(socket, own_redis, owner.tenant.id)
    socket.close()


def test_a_socket_asked_for_while_redis_is_away_is_a_503_json_with_retry_after(
    owner,
    own_redis,  # noqa: F811
    live_web,
):
    own_redis.kill()

    with pytest.raises(InvalidStatus) as refused:
        connect(live_web, additional_headers={"Authorization": f"Bearer {owner.token}"})

    response = refused.value.response
    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert json.loads(response.body)["code"] == "live_unavailable"

    own_redis.start()
    socket = wait_until(lambda: _try_open(live_web, owner.token), timeout=30)
    socket.close()


def _try_open(address: str, token: str) -> ClientConnection | None:
    try:
        return _open(address, token)
    except InvalidStatus:
        return None
