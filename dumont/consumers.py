"""The tenant websocket (/ws/tenant/): a client receives every live event of its tenant."""

from urllib.parse import parse_qs, urlparse

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.middleware import BaseMiddleware
from django.conf import settings
from django.http.request import validate_host

from accounts.authentication import context_for_session_user, context_for_token
from accounts.services import SESSION_TENANT_KEY
from dumont.live import tenant_group

CLOSE_UNAUTHENTICATED = 4401


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
    """Put `tenant_id` in the scope from a bearer token, else from the portal session."""

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
        if context is not None:
            scope["tenant_id"] = context.tenant.id
            scope["user"] = context.user
        return await super().__call__(scope, receive, send)


class TenantConsumer(AsyncJsonWebsocketConsumer):
    """Joins the caller's tenant group; forwards each event as {"event", "data"}."""

    group_name: str | None = None

    async def connect(self):
        tenant_id = self.scope.get("tenant_id")
        if tenant_id is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.group_name = tenant_group(tenant_id)
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()
        await self.send_json({"event": "connected", "data": {"tenant_id": tenant_id}})

    async def disconnect(self, code):
        if self.group_name:
            await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def receive_json(self, content, **kwargs):
        if isinstance(content, dict) and content.get("event") == "ping":
            await self.send_json({"event": "pong", "data": {}})

    async def tenant_event(self, message):
        await self.send_json({"event": message["event"], "data": message["data"]})
