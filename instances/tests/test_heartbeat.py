import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from conftest import wait_until
from instances import agent_channel, commands, heartbeats
from instances.agent_tokens import agent_token, hash_agent_token
from instances.models import AgentCommand, Instance
from instances.tests.factories import InstanceFactory

pytestmark = pytest.mark.django_db
Status = Instance.Status


def _agent(instance: Instance) -> APIClient:
    token = agent_token(instance.pk, instance.provision_key)
    Instance.objects.filter(pk=instance.pk).update(agent_token_hash=hash_agent_token(token))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _beat(client: APIClient, percent: float = 80.0, **extra):
    body = {"gpu_utilization_percent": percent, **extra}
    return client.post("/api/agent/heartbeat", body, format="json")


def test_the_first_beat_of_a_provisioning_machine_makes_it_running():
    instance = InstanceFactory(status=Status.PROVISIONING)
    agent = _agent(instance)

    response = _beat(agent)

    assert response.status_code == 200
    assert response.json()["status"] == "running"
    instance.refresh_from_db()
    assert instance.status == "running"
    assert instance.events.get().actor == "agent"


def test_a_beat_records_utilisation_and_busy_time_only_when_busy(owner):
    instance = InstanceFactory(tenant=owner.tenant, status=Status.RUNNING)
    agent = _agent(instance)
    start = timezone.now()

    with time_machine.travel(start, tick=False):
        _beat(agent, percent=50)
    with time_machine.travel(start + timedelta(minutes=1), tick=False):
        _beat(agent, percent=1)  # below the tenant's 5 % idle threshold

    instance.refresh_from_db()
    assert instance.gpu_utilization_percent == 1
    assert instance.last_heartbeat_at == start + timedelta(minutes=1)
    assert instance.last_busy_at == start


def test_the_busy_threshold_is_the_tenants_idle_threshold(owner):
    owner.tenant.settings.idle_threshold_percent = 60
    owner.tenant.settings.save()
    instance = InstanceFactory(tenant=owner.tenant, status=Status.RUNNING)

    _beat(_agent(instance), percent=50)

    instance.refresh_from_db()
    assert instance.last_busy_at is None


def test_queued_commands_are_handed_out_once_and_their_results_recorded():
    instance = InstanceFactory(status=Status.RUNNING)
    agent = _agent(instance)
    command = commands.queue_command(instance, "ping", {"echo": "hi"})

    first = _beat(agent).json()
    second = _beat(agent, command_results=[{"id": command.pk, "ok": True, "detail": "pong"}]).json()

    assert first["commands"] == [{"id": command.pk, "kind": "ping", "args": {"echo": "hi"}}]
    assert second["commands"] == []
    command.refresh_from_db()
    assert (command.state, command.detail) == (AgentCommand.State.SUCCEEDED, "pong")


def _a_session_waits_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


@pytest.mark.django_db(transaction=True)
def test_a_command_queued_while_a_beat_hands_out_commands_still_reaches_the_agent():
    """A customer hibernates while the agent's beat is being answered: the final sync queued in
    that moment goes out in this reply or the next, never waits forever in the queue."""
    instance = InstanceFactory(status=Status.RUNNING)
    agent = _agent(instance)
    token = agent._credentials["HTTP_AUTHORIZATION"].removeprefix("Bearer ")
    commands.queue_command(instance, "sync")  # the beat below has commands to hand out
    beat = heartbeats.ingest(token, 50.0, timezone.now())  # stored before the customer's move
    queued, commit = threading.Event(), threading.Event()
    replies = []

    def customer():
        with transaction.atomic():
            commands.queue_command(instance, "final_sync")
            queued.set()
            commit.wait(30)
        connection.close()

    def answer_the_beat():
        replies.append(agent_channel.complete_heartbeat(beat, [], timezone.now()))
        connection.close()

    customer_thread = threading.Thread(target=customer)
    customer_thread.start()
    queued.wait(30)
    beat_thread = threading.Thread(target=answer_the_beat)
    beat_thread.start()
    wait_until(_a_session_waits_for_a_lock, timeout=30)  # the reply waits for the customer
    commit.set()
    customer_thread.join(30)
    beat_thread.join(30)

    handed_out = replies[0].commands + _beat(agent).json()["commands"]
    assert sorted(command["kind"] for command in handed_out) == ["final_sync", "sync"]


@pytest.mark.parametrize("header", ["Bearer dia_wrong", "Bearer dmt_notanagent", "Basic x", ""])
def test_a_beat_without_the_instances_agent_token_is_refused(header):
    InstanceFactory(status=Status.RUNNING)
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)

    response = _beat(client)

    assert response.status_code in (401, 403)
    assert response.json()["code"] in (
        "invalid_token",
        "not_authenticated",
        "authentication_failed",
    )


def test_a_customer_token_cannot_send_heartbeats(owner):
    response = _beat(owner.client)

    assert response.status_code == 401


def test_an_agent_of_a_deleted_instance_is_refused():
    instance = InstanceFactory(status=Status.RUNNING)
    agent = _agent(instance)
    Instance.objects.filter(pk=instance.pk).update(status=Status.DELETED)

    assert _beat(agent).status_code == 401


@pytest.mark.parametrize("percent", [-1, 101, "lots"])
def test_a_malformed_beat_is_a_400(percent):
    instance = InstanceFactory(status=Status.RUNNING)

    response = _beat(_agent(instance), percent=percent)

    assert response.status_code == 400
    assert "code" in response.json()


@pytest.mark.parametrize(
    ("percent", "is_busy"), [(4.9, False), (5.0, True), (5.1, True)], ids=["under", "at", "over"]
)
def test_the_default_threshold_counts_exactly_five_percent_as_busy(percent, is_busy):
    instance = InstanceFactory(status=Status.RUNNING)

    _beat(_agent(instance), percent=percent)

    instance.refresh_from_db()
    assert (instance.last_busy_at is not None) is is_busy


@pytest.mark.parametrize(
    "activity",
    [
        {"workspace_changed": True},
        {"interactive_sessions": 1},
        {"network_bytes_per_second": 10 * 1024 * 1024},
    ],
    ids=["disk", "session", "network"],
)
def test_a_machine_used_without_its_gpu_is_busy(activity):
    instance = InstanceFactory(status=Status.RUNNING)

    _beat(_agent(instance), percent=0, activity=activity)

    instance.refresh_from_db()
    assert instance.last_busy_at is not None


def test_a_quiet_machine_at_zero_gpu_is_idle():
    instance = InstanceFactory(status=Status.RUNNING)
    quiet = {"workspace_changed": False, "interactive_sessions": 0, "network_bytes_per_second": 10}

    _beat(_agent(instance), percent=0, activity=quiet)

    instance.refresh_from_db()
    assert instance.last_busy_at is None
