"""The whole life of an instance on the simulated market, with real agent processes.

A worker process runs the tasks, the simulator boots machines whose `dumont-agent` beats against
the API on a real port, and tenant sockets watch every transition live.
"""

from pathlib import Path

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.utils import timezone

from conftest import wait_until
from dumont.asgi import application
from instances.models import Instance

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest_asyncio.fixture(autouse=True)
async def _close_thread_connections():
    yield
    await sync_to_async(connections.close_all)()


async def _socket(token: str) -> WebsocketCommunicator:
    socket = WebsocketCommunicator(
        application, "/ws/tenant/", headers=[(b"authorization", f"Bearer {token}".encode())]
    )
    connected, _ = await socket.connect(timeout=5)
    assert connected
    assert (await socket.receive_json_from(timeout=5))["event"] == "connected"
    return socket


async def _statuses_until(socket: WebsocketCommunicator, last: str, timeout: float = 60) -> list:
    seen = []
    while not seen or seen[-1] != last:
        message = await socket.receive_json_from(timeout=timeout)
        assert message["event"] == "instance.status"
        seen.append(message["data"]["to_status"])
    return seen


async def test_create_run_hibernate_wake_delete_on_the_simulator(two_tenants, platform):
    a, b = two_tenants
    socket_a, socket_b = await _socket(a.token), await _socket(b.token)

    created = await sync_to_async(a.client.post)(
        "/api/instances",
        {"gpu": "rtx4090", "region": "us-east", "max_price": 2.0, "name": "alpha-box"},
        format="json",
    )
    assert created.status_code == 202, created.content
    body = created.json()
    assert (body["status"], body["gpu"], body["region"]) == ("pending", "RTX 4090", "US-East")
    instance_id = body["id"]

    assert await _statuses_until(socket_a, "running") == ["pending", "provisioning", "running"]
    running = (await sync_to_async(a.client.get)(f"/api/instances/{instance_id}")).json()
    assert running["status"] == "running"
    assert running["price_per_hour"] <= 2.0
    assert running["connection"]["ssh_command"].startswith("ssh -p ")
    assert running["connection"]["jupyter_url"].startswith(f"https://{instance_id}-8888.")
    machine = platform.get(f"/v1/machines/{running['provider_id']}")
    assert machine["state"] == "running"
    assert Path(machine["folder"]).is_dir()

    def beats_arrive():
        instance = Instance.objects.get(pk=instance_id)
        return instance.last_heartbeat_at and instance.gpu_utilization_percent is not None

    await sync_to_async(wait_until)(beats_arrive, timeout=20)

    (Path(machine["folder"]) / "workspace" / "notes.txt").write_text("kept across machines")
    written_at = timezone.now()

    def synced_since_written():
        synced = Instance.objects.get(pk=instance_id).last_sync_at
        return synced and synced > written_at

    await sync_to_async(wait_until)(synced_since_written, timeout=30)
    hibernated = await sync_to_async(a.client.post)(f"/api/instances/{instance_id}/hibernate")
    assert hibernated.status_code == 202
    assert await _statuses_until(socket_a, "hibernated") == ["hibernating", "hibernated"]
    # The final sync succeeded, so the GPU machine is released, not kept.
    assert platform.get(f"/v1/machines/{running['provider_id']}")["state"] == "destroyed"

    woken = await sync_to_async(a.client.post)(f"/api/instances/{instance_id}/wake")
    assert woken.status_code == 202
    assert await _statuses_until(socket_a, "running") == ["waking", "running"]
    awake = (await sync_to_async(a.client.get)(f"/api/instances/{instance_id}")).json()
    assert awake["provider_id"] != running["provider_id"]
    new_machine = platform.get(f"/v1/machines/{awake['provider_id']}")
    notes = Path(new_machine["folder"]) / "workspace" / "notes.txt"
    assert notes.read_text() == "kept across machines"

    deleted = await sync_to_async(a.client.delete)(f"/api/instances/{instance_id}")
    assert deleted.status_code == 202
    assert await _statuses_until(socket_a, "deleted") == ["deleting", "deleted"]
    assert platform.get(f"/v1/machines/{awake['provider_id']}")["state"] == "destroyed"
    assert not Path(new_machine["folder"]).exists()

    events = (await sync_to_async(a.client.get)(f"/api/instances/{instance_id}/events")).json()
    assert [e["to_status"] for e in events["results"]] == [
        "pending",
        "provisioning",
        "running",
        "hibernating",
        "hibernated",
        "waking",
        "running",
        "deleting",
        "deleted",
    ]
    assert events["results"][0]["actor"] == f"user:{a.user.email}"
    assert await socket_b.receive_nothing(timeout=0.5)
    other = await sync_to_async(b.client.get)(f"/api/instances/{instance_id}")
    assert other.status_code == 404
    await socket_a.disconnect()
    await socket_b.disconnect()
