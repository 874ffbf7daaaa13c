"""The ASGI fast lane answers plain beats like the Django view, and hands the rest to it."""

import json

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.testing import HttpCommunicator
from django.db import connections

from dumont.asgi import django_application
from instances import commands
from instances.agent_tokens import agent_token, hash_agent_token
from instances.fast_heartbeat import HeartbeatFastLane
from instances.models import AgentCommand, Instance
from instances.tests.factories import InstanceFactory

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]
Status = Instance.Status


@pytest_asyncio.fixture
async def lane():
    lane = HeartbeatFastLane(django_application)
    assert lane.enabled
    yield lane
    if lane.pool is not None:
        await lane.pool.close()
    await sync_to_async(connections.close_all)()
    connections["default"].close_pool()  # Django's pool lent connections to request threads


@sync_to_async
def _instance(status=Status.RUNNING) -> tuple[Instance, str]:
    instance = InstanceFactory(status=status)
    token = agent_token(instance.pk, instance.provision_key)
    Instance.objects.filter(pk=instance.pk).update(agent_token_hash=hash_agent_token(token))
    return instance, token


async def _beat(lane, token: str, body: dict) -> tuple[int, dict]:
    content = json.dumps(body).encode()
    communicator = HttpCommunicator(
        lane,
        "POST",
        "/api/agent/heartbeat",
        body=content,
        headers=[
            (b"content-length", str(len(content)).encode()),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
            (b"host", b"127.0.0.1"),
        ],
    )
    response = await communicator.get_response(timeout=10)
    return response["status"], json.loads(response["body"])


async def test_a_plain_beat_is_stored_by_the_fast_lane(lane):
    instance, token = await _instance()

    status, body = await _beat(lane, token, {"gpu_utilization_percent": 42.5})

    assert status == 200
    assert body["status"] == "running"
    assert body["commands"] == []
    stored = await Instance.objects.aget(pk=instance.pk)
    assert stored.gpu_utilization_percent == 42.5
    assert stored.last_busy_at is not None
    assert lane.pool is not None  # served by the lane, not by Django


async def test_the_first_beat_of_a_booting_machine_makes_it_running(lane):
    instance, token = await _instance(Status.WAKING)

    status, body = await _beat(lane, token, {"gpu_utilization_percent": 0})

    assert (status, body["status"]) == (200, "running")
    assert (await Instance.objects.aget(pk=instance.pk)).status == "running"


async def test_queued_commands_come_back_in_the_fast_lane_too(lane):
    instance, token = await _instance()
    command = await sync_to_async(commands.queue_command)(instance, "ping")

    _, body = await _beat(lane, token, {"gpu_utilization_percent": 10})

    assert body["commands"] == [{"id": command.pk, "kind": "ping", "args": {}}]


async def test_a_beat_with_command_results_goes_to_the_django_view(lane):
    instance, token = await _instance()
    command = await sync_to_async(commands.queue_command)(instance, "ping")
    await _beat(lane, token, {"gpu_utilization_percent": 10})

    status, _ = await _beat(
        lane,
        token,
        {"gpu_utilization_percent": 10, "command_results": [{"id": command.pk, "ok": True}]},
    )

    assert status == 200
    assert (await AgentCommand.objects.aget(pk=command.pk)).state == "succeeded"


async def test_an_unknown_token_is_a_401_and_a_malformed_beat_a_400(lane):
    _, token = await _instance()

    unknown = await _beat(lane, "dia_" + "0" * 64, {"gpu_utilization_percent": 1})
    malformed = await _beat(lane, token, {"gpu_utilization_percent": 250})

    assert unknown == (401, {"code": "invalid_token", "detail": unknown[1]["detail"]})
    assert malformed[0] == 400
    assert malformed[1]["code"] == "max_value"


async def test_the_fast_lane_counts_a_machine_in_use_at_zero_gpu_as_busy(lane):
    instance, token = await _instance()
    beat = {"gpu_utilization_percent": 0, "activity": {"interactive_sessions": 2}}

    status, _body = await _beat(lane, token, beat)

    assert status == 200
    stored = await Instance.objects.aget(pk=instance.pk)
    assert stored.last_busy_at is not None
    assert lane.pool is not None
