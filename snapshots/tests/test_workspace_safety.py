"""The workspace survives the machine: hibernation releases the GPU and waking restores the
latest sync on a new one; an interrupted spot GPU fails over and comes back with its files."""

import time

import pytest
from django.utils import timezone

from billing.models import Subscription, UsageInterval
from conftest import wait_until
from instances.models import Failover, Instance, Standby
from instances.reconcile import reconcile_all
from snapshots.tests.test_snapshots import (
    fill_workspace,
    running_instance,
    tree_digest,
    workspace_of,
)

pytestmark = pytest.mark.django_db(transaction=True)
Status = Instance.Status


def _status(instance_id: str) -> str:
    return Instance.objects.get(pk=instance_id).status


def _synced_after(instance_id: str, moment) -> None:
    """Wait for a sync that started after `moment` (so it holds what was written before)."""
    wait_until(
        lambda: (synced := Instance.objects.get(pk=instance_id).last_sync_at) and synced > moment,
        timeout=60,
    )


def _back_on_a_new_gpu(instance: dict) -> Instance:
    def recovered():
        now = Instance.objects.get(pk=instance["id"])
        return now.status == Status.RUNNING and now.provider_id != instance["provider_id"] and now

    return wait_until(recovered, timeout=90)


def test_hibernate_releases_the_gpu_and_wake_restores_the_workspace_byte_identical(
    owner, snapshot_platform
):
    instance = running_instance(owner, gpu="RTX 4090", region="US-East", max_price=2.0)
    workspace = workspace_of(snapshot_platform, instance)
    fill_workspace(workspace)
    original = tree_digest(workspace)
    _synced_after(instance["id"], timezone.now())  # sync runs: the final one can release

    owner.client.post(f"/api/instances/{instance['id']}/hibernate")
    wait_until(lambda: _status(instance["id"]) == Status.HIBERNATED, timeout=60)
    assert snapshot_platform.get(f"/v1/machines/{instance['provider_id']}")["state"] == "destroyed"
    owner.client.post(f"/api/instances/{instance['id']}/wake")
    wait_until(lambda: _status(instance["id"]) == Status.RUNNING, timeout=90)

    woken = owner.client.get(f"/api/instances/{instance['id']}").json()
    assert woken["provider_id"] != instance["provider_id"]
    assert tree_digest(workspace_of(snapshot_platform, woken)) == original


def test_without_a_standby_an_interrupted_gpu_fails_over_with_its_synced_files(
    owner, snapshot_platform
):
    Subscription.objects.filter(tenant=owner.tenant).delete()  # pay as you go: no standby
    instance = running_instance(owner, gpu="RTX 4090", region="US-East", max_price=2.0)
    workspace = workspace_of(snapshot_platform, instance)
    fill_workspace(workspace)
    written_at = timezone.now()
    original = tree_digest(workspace)
    _synced_after(instance["id"], written_at)

    interrupted = owner.client.post(f"/api/instances/{instance['id']}/simulate-interruption")
    assert interrupted.status_code == 202
    _back_on_a_new_gpu(instance)

    recovered = owner.client.get(f"/api/instances/{instance['id']}").json()
    assert recovered["provider_id"] != instance["provider_id"]
    assert tree_digest(workspace_of(snapshot_platform, recovered)) == original
    (failover,) = owner.client.get(f"/api/instances/{instance['id']}/failovers").json()["results"]
    assert failover["status"] == "completed"
    assert 0 <= failover["rpo_seconds"] < 30
    assert failover["rto_gpu_seconds"] > 0
    events = owner.client.get(f"/api/instances/{instance['id']}/events").json()["results"]
    assert [event["to_status"] for event in events][-3:] == [
        "failing_over",
        "recovering",
        "running",
    ]
    assert "last sync" in events[-3]["reason"]


def test_a_second_interruption_fails_over_again(owner, snapshot_platform):
    instance = running_instance(owner, gpu="RTX 4090", region="US-East", max_price=2.0)
    (workspace_of(snapshot_platform, instance) / "model.txt").write_text("epoch 1")
    _synced_after(instance["id"], timezone.now())

    for _ in range(2):
        current = owner.client.get(f"/api/instances/{instance['id']}").json()
        owner.client.post(f"/api/instances/{instance['id']}/simulate-interruption")
        wait_until(
            lambda current=current: (
                (now := owner.client.get(f"/api/instances/{instance['id']}").json())["status"]
                == "running"
                and now["provider_id"] != current["provider_id"]
            ),
            timeout=90,
        )
        _synced_after(instance["id"], timezone.now())
        time.sleep(0.1)

    final = owner.client.get(f"/api/instances/{instance['id']}").json()
    assert (workspace_of(snapshot_platform, final) / "model.txt").read_text() == "epoch 1"
    failovers = owner.client.get(f"/api/instances/{instance['id']}/failovers").json()["results"]
    assert [failover["status"] for failover in failovers] == ["completed", "completed"]


@pytest.mark.django_db
def test_only_simulator_instances_can_be_interrupted(two_tenants):
    from instances.tests.factories import InstanceFactory

    a, b = two_tenants
    on_vast = InstanceFactory(
        tenant=a.tenant, status=Status.RUNNING, provider="vast", provider_id="123"
    )

    assert a.client.post(f"/api/instances/{on_vast.pk}/simulate-interruption").status_code == 404
    assert b.client.post(f"/api/instances/{on_vast.pk}/simulate-interruption").status_code == 404


def _standby_following(instance_id: str, snapshot_id: str = "") -> Standby:
    def following():
        standby = Standby.objects.filter(instance_id=instance_id, status="following").first()
        ready = standby and standby.last_heartbeat_at
        if snapshot_id:
            ready = ready and standby.followed_snapshot_id == snapshot_id
        return ready and standby

    return wait_until(following, timeout=60)


def test_the_standby_serves_first_then_a_new_gpu_takes_over_with_the_files(
    owner, snapshot_platform
):
    instance = running_instance(owner, gpu="RTX 4090", region="US-East", max_price=2.0)
    workspace = workspace_of(snapshot_platform, instance)
    fill_workspace(workspace)
    original = tree_digest(workspace)
    _synced_after(instance["id"], timezone.now())
    synced = Instance.objects.get(pk=instance["id"]).last_sync_snapshot_id
    standby = _standby_following(instance["id"], synced)
    standby_workspace = workspace_of(snapshot_platform, {"provider_id": standby.provider_id})
    assert tree_digest(standby_workspace) == original  # warm: it already holds the sync
    assert Instance.objects.get(pk=instance["id"]).last_sync_snapshot_id == synced  # unchanged

    owner.client.post(f"/api/instances/{instance['id']}/simulate-interruption")
    recovered = _back_on_a_new_gpu(instance)

    assert tree_digest(workspace_of(snapshot_platform, {"provider_id": recovered.provider_id})) == (
        original
    )
    (failover,) = owner.client.get(f"/api/instances/{instance['id']}/failovers").json()["results"]
    assert 0 < failover["rto_standby_seconds"] <= failover["rto_gpu_seconds"]
    statuses = [
        event["to_status"]
        for event in owner.client.get(f"/api/instances/{instance['id']}/events").json()["results"]
    ]
    assert statuses[-4:] == ["failing_over", "on_standby", "recovering", "running"]
    assert _standby_following(instance["id"]).pk == standby.pk  # back to following
    detail = owner.client.get(f"/api/instances/{instance['id']}").json()
    assert detail["is_on_standby"] is False and detail["standby"]["status"] == "following"


def test_a_lost_standby_is_replaced_in_the_next_region(owner, snapshot_platform):
    instance = running_instance(owner, gpu="RTX 4090", region="US-East", max_price=2.0)
    first = _standby_following(instance["id"])
    assert first.region == "US-East"

    snapshot_platform.post(f"/v1/machines/{first.provider_id}/interrupt")
    report = reconcile_all()

    assert report.standbys_replaced == [first.pk]
    first.refresh_from_db()
    second = _standby_following(instance["id"])
    assert (first.status, second.region) == ("lost", "US-West")
    assert snapshot_platform.get(f"/v1/machines/{first.provider_id}")["state"] in (
        "interrupted",
        "destroyed",
    )


def test_a_hibernated_instance_stops_its_standby_and_its_bill(owner, snapshot_platform):
    instance = running_instance(owner, gpu="RTX 4090", region="US-East", max_price=2.0)
    standby = _standby_following(instance["id"])

    assert owner.client.post(f"/api/instances/{instance['id']}/hibernate").status_code == 202
    wait_until(lambda: _status(instance["id"]) == Status.HIBERNATED, timeout=60)
    wait_until(lambda: Standby.objects.get(pk=standby.pk).status == "stopped", timeout=30)

    assert snapshot_platform.get(f"/v1/machines/{standby.provider_id}")["state"] == "stopped"
    interval = UsageInterval.objects.get(subject_id=f"standby-{standby.pk}")
    assert interval.kind == "standby" and interval.ended_at is not None


def test_a_simulated_interruption_is_timed_from_the_moment_the_machine_was_taken(
    owner, snapshot_platform
):
    instance = running_instance(owner, gpu="RTX 4090", region="US-East", max_price=2.0)
    asked = timezone.now()

    owner.client.post(f"/api/instances/{instance['id']}/simulate-interruption")
    answered = timezone.now()
    _back_on_a_new_gpu(instance)

    failover = Failover.objects.get(instance_id=instance["id"])
    assert asked <= failover.interrupted_at <= answered  # not when a worker got to it
