from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from instances import services
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
    command = services.queue_command(instance, "ping", {"echo": "hi"})

    first = _beat(agent).json()
    second = _beat(agent, command_results=[{"id": command.pk, "ok": True, "detail": "pong"}]).json()

    assert first["commands"] == [{"id": command.pk, "kind": "ping", "args": {"echo": "hi"}}]
    assert second["commands"] == []
    command.refresh_from_db()
    assert (command.state, command.detail) == (AgentCommand.State.SUCCEEDED, "pong")


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
