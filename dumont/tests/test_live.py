"""The tenant websocket: events reach every socket of their tenant and no other."""

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.test import Client

from accounts.tests.factories import PASSWORD
from conftest import worker_arguments
from dumont.asgi import application
from dumont.live import apush_to_tenant
from dumont.tests.live_tasks import push_from_worker

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest_asyncio.fixture(autouse=True)
async def _close_thread_connections():
    """Consumers reach the ORM from asgiref's shared thread: close its connection after each test
    so the test database can be dropped."""
    yield
    await sync_to_async(connections.close_all)()


def _socket(*headers: tuple[bytes, bytes], path: str = "/ws/tenant/") -> WebsocketCommunicator:
    return WebsocketCommunicator(application, path, headers=list(headers))


def _bearer(token: str) -> tuple[bytes, bytes]:
    return (b"authorization", f"Bearer {token}".encode())


async def _connected(communicator: WebsocketCommunicator) -> WebsocketCommunicator:
    is_connected, _ = await communicator.connect(timeout=5)
    assert is_connected
    hello = await communicator.receive_json_from(timeout=5)
    assert hello["event"] == "connected"
    return communicator


async def test_an_event_pushed_by_a_worker_process_reaches_only_its_tenant(
    two_tenants, start_process
):
    tenant_a, tenant_b = two_tenants
    start_process(*worker_arguments("dumont.tests.live_tasks"))
    socket_a = await _connected(_socket(_bearer(tenant_a.token)))
    socket_b = await _connected(_socket(_bearer(tenant_b.token)))

    await sync_to_async(push_from_worker.delay)(
        tenant_a.tenant.id, "instance.status", {"id": 7, "status": "running"}
    )

    message = await socket_a.receive_json_from(timeout=30)
    assert message == {"event": "instance.status", "data": {"id": 7, "status": "running"}}
    assert await socket_b.receive_nothing(timeout=1)
    await socket_a.disconnect()
    await socket_b.disconnect()


async def test_a_token_in_the_query_string_also_authenticates(owner):
    socket = await _connected(_socket(path=f"/ws/tenant/?token={owner.token}"))

    await apush_to_tenant(owner.tenant.id, "ping", {"n": 1})

    assert await socket.receive_json_from(timeout=5) == {"event": "ping", "data": {"n": 1}}
    await socket.disconnect()


async def test_a_socket_without_credentials_is_refused():
    is_connected, _ = await _socket().connect(timeout=5)

    assert not is_connected


async def test_a_revoked_token_is_refused(owner):
    def revoke():
        token_id = owner.user.api_tokens.get().pk
        assert owner.client.delete(f"/api/tokens/{token_id}").status_code == 204

    await sync_to_async(revoke)()

    is_connected, _ = await _socket(_bearer(owner.token)).connect(timeout=5)

    assert not is_connected


async def _session_cookie(email: str) -> bytes:
    client = Client()
    response = await sync_to_async(client.post)(
        "/api/auth/login", {"email": email, "password": PASSWORD}, content_type="application/json"
    )
    assert response.status_code == 200
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def test_a_portal_session_from_our_own_origin_is_accepted(owner):
    cookie = await _session_cookie(owner.user.email)

    socket = await _connected(_socket((b"cookie", cookie), (b"origin", b"http://localhost")))

    await apush_to_tenant(owner.tenant.id, "hello", {})
    assert (await socket.receive_json_from(timeout=5))["event"] == "hello"
    await socket.disconnect()


async def test_a_portal_session_from_another_site_is_refused(owner):
    cookie = await _session_cookie(owner.user.email)

    is_connected, _ = await _socket(
        (b"cookie", cookie), (b"origin", b"https://evil.example")
    ).connect(timeout=5)

    assert not is_connected
