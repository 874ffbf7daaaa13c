"""Commands across a failover: what was queued for the lost machine never reaches the new one,
and the new GPU is told to sync in the reply to the beat that reports its restore."""

import pytest
from django.utils import timezone

from instances import recovery
from instances.commands import queue_command
from instances.models import AgentCommand, Instance
from instances.tests.factories import InstanceFactory
from instances.tests.test_heartbeat import _agent, _beat

pytestmark = pytest.mark.django_db
Status = Instance.Status


def test_a_command_queued_for_a_lost_machine_fails_and_never_reaches_the_next_one():
    instance = InstanceFactory(
        status=Status.RUNNING, provider_id="m-lost", last_sync_snapshot_id="a" * 32
    )
    stale = queue_command(instance, "sync", {"interval_seconds": 2})

    recovery.fail_over(instance.pk, reason="the provider reports the machine interrupted")

    stale.refresh_from_db()
    assert stale.state == AgentCommand.State.FAILED
    assert stale.detail.startswith("the machine was lost")
    # The replacement boots: its first beat asks for the restore, and nothing else.
    instance.refresh_from_db()
    Instance.objects.filter(pk=instance.pk).update(
        status=Status.RECOVERING, provider_id="m-new", **recovery.new_provision_key(instance)
    )
    instance.refresh_from_db()
    commands = _beat(_agent(instance), percent=0).json()["commands"]
    assert [command["kind"] for command in commands] == [recovery.RESTORE_LATEST]


def test_the_new_gpu_gets_its_sync_in_the_reply_to_its_restore_result():
    instance = InstanceFactory(
        status=Status.RECOVERING,
        provider_id="m-new",
        needs_restore=True,
        restore_snapshot_id="b" * 32,
        last_sync_snapshot_id="b" * 32,
        last_sync_at=timezone.now(),
    )
    agent = _agent(instance)
    restore = _beat(agent, percent=0).json()["commands"]
    assert [command["kind"] for command in restore] == [recovery.RESTORE_LATEST]

    reply = _beat(
        agent,
        percent=0,
        command_results=[
            {
                "id": restore[0]["id"],
                "ok": True,
                "detail": "done",
                "result": {"snapshot_id": "b" * 32},
            }
        ],
    ).json()

    assert reply["status"] == "running"
    (sync,) = reply["commands"]
    assert sync["kind"] == "sync"
    assert sync["args"]["tags"] == ["sync", f"instance:{instance.pk}"]
    assert sync["args"]["repository"]  # with the repository's access, added at hand-out
