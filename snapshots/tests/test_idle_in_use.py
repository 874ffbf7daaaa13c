"""A machine in use at 0 % GPU is not idle: its real agent reports an upload into the workspace
and, on the simulator, the terminals and traffic of its load profile; a woken instance gets its
whole idle time again."""

import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from conftest import wait_until
from instances.idle import idle_instance_ids
from instances.models import Instance
from snapshots.tests.test_snapshots import running_instance, workspace_of

pytestmark = pytest.mark.django_db(transaction=True)


def _busy_since(instance_id: str, moment) -> bool:
    busy = Instance.objects.get(pk=instance_id).last_busy_at
    return busy is not None and busy > moment


def test_an_upload_into_the_workspace_at_zero_gpu_keeps_the_machine_busy(owner, snapshot_platform):
    instance = running_instance(owner, gpu="RTX 4090", region="US-East", max_price=2.0)
    workspace = workspace_of(snapshot_platform, instance)
    started = timezone.now()
    stop = threading.Event()

    def upload() -> None:  # a copy in progress: a file that keeps growing
        with (workspace / "dataset.bin").open("ab") as handle:
            while not stop.wait(0.05):
                handle.write(b"x" * 65536)
                handle.flush()

    uploader = threading.Thread(target=upload)
    uploader.start()
    try:
        wait_until(lambda: _busy_since(instance["id"], started), timeout=60)
    finally:
        stop.set()
        uploader.join()

    assert Instance.objects.get(pk=instance["id"]).gpu_utilization_percent < 5


def test_a_logged_in_user_keeps_a_machine_at_zero_gpu_busy(owner, snapshot_platform):
    instance = running_instance(owner, gpu="RTX 4090", region="US-East", max_price=2.0)
    started = timezone.now()

    snapshot_platform.put(
        f"/v1/machines/{instance['provider_id']}/load",
        {"gpu_utilization_percent": 0, "interactive_sessions": 1},
    )

    wait_until(lambda: _busy_since(instance["id"], started), timeout=60)


def test_a_woken_instance_is_not_hibernated_again_before_its_idle_minutes(owner, snapshot_platform):
    instance = running_instance(owner, gpu="RTX 4090", region="US-East", max_price=2.0)
    owner.client.post(f"/api/instances/{instance['id']}/hibernate")
    wait_until(lambda: Instance.objects.get(pk=instance["id"]).status == "hibernated", timeout=60)
    # It had been idle for an hour before it hibernated.
    Instance.objects.filter(pk=instance["id"]).update(
        last_busy_at=timezone.now() - timedelta(hours=1)
    )

    owner.client.post(f"/api/instances/{instance['id']}/wake")
    wait_until(lambda: Instance.objects.get(pk=instance["id"]).status == "running", timeout=60)

    assert instance["id"] not in idle_instance_ids()
