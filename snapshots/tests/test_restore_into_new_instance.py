"""A snapshot restored into a new instance: the instance is `running` only once its workspace is
complete, and a restore that cannot complete ends in `error` with its reason, unbilled."""

import os
from pathlib import Path

import pytest

from billing.models import UsageInterval
from conftest import wait_until
from instances.models import Instance
from snapshots import repositories
from snapshots.models import Restore
from snapshots.tests.test_snapshots import running_instance, tree_digest, workspace_of

pytestmark = pytest.mark.django_db(transaction=True)
Status = Instance.Status


def _fill_with_many_files(workspace: Path) -> None:
    """A tree that takes the restore a moment: a large file and 1,500 small ones."""
    (workspace / "weights.bin").write_bytes(os.urandom(8 * 2**20))
    for folder in range(15):
        (workspace / "env" / f"pkg{folder}").mkdir(parents=True)
        for number in range(100):
            (workspace / "env" / f"pkg{folder}" / f"mod{number}.py").write_text(
                f"# module {folder}.{number}\n" * 20
            )


def _snapshot(account, instance_id: str) -> str:
    created = account.client.post("/api/snapshots", {"instance_id": instance_id}, format="json")
    assert created.status_code == 202, created.content
    snapshot_id = created.json()["id"]
    wait_until(
        lambda: account.client.get(f"/api/snapshots/{snapshot_id}").json()["status"] == "completed",
        timeout=90,
    )
    return snapshot_id


def _restore(account, snapshot_id: str) -> str:
    restored = account.client.post(f"/api/snapshots/{snapshot_id}/restore", {}, format="json")
    assert restored.status_code == 202, restored.content
    return restored.json()["id"]


def test_a_restored_instance_runs_only_once_its_whole_workspace_is_there(owner, snapshot_platform):
    source = running_instance(owner, gpu="RTX 4090", region="US-East", max_price=2.0)
    _fill_with_many_files(workspace_of(snapshot_platform, source))
    original = tree_digest(workspace_of(snapshot_platform, source))
    snapshot_id = _snapshot(owner, source["id"])

    instance_id = _restore(owner, snapshot_id)
    seen = wait_until(
        lambda: (
            (instance := Instance.objects.get(pk=instance_id)).status == Status.RUNNING and instance
        ),
        timeout=120,
    )

    assert tree_digest(workspace_of(snapshot_platform, {"provider_id": seen.provider_id})) == (
        original
    )
    (restore,) = owner.client.get(f"/api/snapshots/{snapshot_id}").json()["restores"]
    assert restore["status"] == "completed"
    assert restore["bytes_done"] == restore["bytes_total"] > 0


def test_a_restore_that_hits_a_damaged_pack_ends_in_error_unbilled(owner, snapshot_platform):
    source = running_instance(owner, gpu="RTX 4090", region="US-East", max_price=2.0)
    (workspace_of(snapshot_platform, source) / "weights.bin").write_bytes(os.urandom(2**20))
    snapshot_id = _snapshot(owner, source["id"])
    store = Path(repositories.location_for(owner.tenant.pk))
    for pack in (store / "data").rglob("*"):
        if pack.is_file():
            damaged = bytearray(pack.read_bytes())
            damaged[len(damaged) // 2] ^= 0xFF
            pack.write_bytes(bytes(damaged))

    instance_id = _restore(owner, snapshot_id)
    wait_until(lambda: Instance.objects.get(pk=instance_id).status == Status.ERROR, timeout=120)

    instance = Instance.objects.get(pk=instance_id)
    assert "damaged" in instance.status_reason
    assert not instance.events.filter(to_status=Status.RUNNING).exists()
    assert not UsageInterval.objects.filter(subject_id=instance_id).exists()
    restore = Restore.objects.get(instance_id=instance_id)
    assert restore.status == Restore.Status.FAILED and "damaged" in restore.error


def test_restore_then_hibernate_at_once_then_wake_keeps_every_file(owner, snapshot_platform):
    source = running_instance(owner, gpu="RTX 4090", region="US-East", max_price=2.0)
    _fill_with_many_files(workspace_of(snapshot_platform, source))
    original = tree_digest(workspace_of(snapshot_platform, source))
    snapshot_id = _snapshot(owner, source["id"])

    instance_id = _restore(owner, snapshot_id)
    answers = []

    def hibernate_accepted() -> bool:
        answer = owner.client.post(f"/api/instances/{instance_id}/hibernate")
        answers.append(answer.status_code)
        return answer.status_code == 202

    wait_until(hibernate_accepted, timeout=120)
    wait_until(lambda: Instance.objects.get(pk=instance_id).status == Status.HIBERNATED, timeout=90)
    assert owner.client.post(f"/api/instances/{instance_id}/wake").status_code == 202
    wait_until(lambda: Instance.objects.get(pk=instance_id).status == Status.RUNNING, timeout=120)

    assert set(answers) <= {409, 202}  # refused while restoring, never an error
    woken = owner.client.get(f"/api/instances/{instance_id}").json()
    assert tree_digest(workspace_of(snapshot_platform, woken)) == original
