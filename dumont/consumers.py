"""The tenant websocket (/ws/tenant/): a client receives every live event of its tenant.

Live events are at most once (OPERATIONS.md, "Delivery guarantees"). When the channel layer's
Redis fails, a socket can no longer tell what it misses, so it ends with 1013 (try again later):
the client reconnects and re-reads what changed. A handshake while that Redis is away is answered
503 `live_unavailable` with Retry-After, where the server lets an app answer a handshake over HTTP.
"""

import asyncio
import json
import logging
from contextlib import suppress
from urllib.parse import parse_qs, urlparse

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.middleware import BaseMiddleware
from django.conf import settings
from django.http.request import validate_host
from django.utils.translation import gettext as _
from redis.exceptions import RedisError

from accounts.authentication import context_for_session_user, context_for_token
from accounts.services import SESSION_TENANT_KEY
from dumont.live import tenant_group

CLOSE_UNAUTHENTICATED = 4401
CLOSE_TRY_AGAIN_LATER = 1013  # RFC 6455's close code registry
RETRY_AFTER_SECONDS = 5

logger = logging.getLogger(__name__)


def _header(scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return ""


def _bearer_token(scope) -> str:
    authorization = _header(scope, b"authorization")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return (query.get("token") or [""])[0]


def _is_same_site(scope) -> bool:
    # A session cookie rides along on any cross-site websocket a browser opens, so a
    # cookie-authenticated socket must come from one of our own hosts (CSWSH protection).
    origin = urlparse(_header(scope, b"origin")).hostname
    return bool(origin) and validate_host(origin, settings.ALLOWED_HOSTS)


class TenantAuthMiddleware(BaseMiddleware):
    """Put `tenant_id` in the scope from a bearer token, else from the portal session; refuse
    the socket (4401) without either."""

    async def __call__(self, scope, receive, send):
        scope = dict(scope, tenant_id=None)
        token = _bearer_token(scope)
        context = None
        if token:
            context = await database_sync_to_async(context_for_token)(token)
        elif getattr(scope.get("user"), "is_authenticated", False) and _is_same_site(scope):
            tenant_id = scope["session"].get(SESSION_TENANT_KEY)
            context = await database_sync_to_async(context_for_session_user)(
                scope["user"], tenant_id
            )
        if context is None:
            # Refused here, before the consumer starts a receive on the channel layer that would
            # only be cancelled again (a Redis connection opened for nothing).
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": CLOSE_UNAUTHENTICATED})
            return None
        scope["tenant_id"] = context.tenant.id
        scope["user"] = context.user
        return await super().__call__(scope, receive, send)


class TenantConsumer(AsyncJsonWebsocketConsumer):
    """Joins the caller's tenant group; forwards each event as {"event", "data"}."""

    group_name: str | None = None
    accepted = False
    _membership: asyncio.Task | None = None

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        except RedisError as error:
            logger.warning("live socket ended: the channel layer's Redis failed: %s", error)
            await self._end_unavailable(send)
        finally:
            if self._membership is not None:
                self._membership.cancel()

    async def connect(self):
        tenant_id = self.scope["tenant_id"]  # TenantAuthMiddleware refused the others
        self.group_name = tenant_group(tenant_id)
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()
        self.accepted = True
        self._membership = asyncio.create_task(self._keep_membership())
        await self.send_json({"event": "connected", "data": {"tenant_id": tenant_id}})

    async def disconnect(self, code):
        if self.group_name:
            # On a Redis error the membership ends with its expiry, or went with Redis's memory.
            with suppress(RedisError):
                await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def receive_json(self, content, **kwargs):
        if isinstance(content, dict) and content.get("event") == "ping":
            await self.send_json({"event": "pong", "data": {}})

    async def tenant_event(self, message):
        await self.send_json({"event": message["event"], "data": message["data"]})

    async def _keep_membership(self) -> None:
        """Re-join the group before channels_redis's group expiry drops this open socket."""
        while True:
            await asyncio.sleep(settings.LIVE_GROUP_EXPIRY_SECONDS / 2)
            try:
                await self.channel_layer.group_add(self.group_name, self.channel_name)
            except RedisError as error:  # the receive fails too and ends the socket
                logger.warning("live socket could not renew its group: %s", error)

    async def _end_unavailable(self, send) -> None:
        if self.accepted or "websocket.http.response" not in self.scope.get("extensions", {}):
            # OSError, RuntimeError: the client left first (a server refuses a send after a close).
            with suppress(OSError, RuntimeError):
                await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN_LATER})
            return
        body = {
            "code": "live_unavailable",
            "message": _("Live updates are not available; try again in a few seconds."),
        }
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": json.dumps(body).encode()})
