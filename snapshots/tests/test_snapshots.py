"""Snapshots end to end on the simulated market: real agents run the real engine on their
workspaces; the snapshot of a deleted instance comes back on another GPU in another region."""

import hashlib
import os
from pathlib import Path

import pytest

from conftest import wait_until
from instances.models import Instance
from instances.tests.factories import InstanceFactory
from snapshots.models import Snapshot, SnapshotRepository
from webhooks.models import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db(transaction=True)


def tree_digest(root: Path) -> dict[str, tuple]:
    """Every path under root with its type, mode and content hash (or link target)."""
    found = {}
    for folder, directories, files in os.walk(root):
        for name in directories + files:
            path = Path(folder) / name
            relative = str(path.relative_to(root))
            if path.is_symlink():
                found[relative] = ("link", os.readlink(path))
            elif path.is_dir():
                found[relative] = ("dir", path.stat().st_mode & 0o7777)
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                found[relative] = ("file", path.stat().st_mode & 0o7777, digest)
    return found


def fill_workspace(workspace: Path) -> None:
    (workspace / "checkpoints").mkdir()
    (workspace / "checkpoints" / "model.bin").write_bytes(os.urandom(3 * 2**20))
    (workspace / "train.py").write_text("print('training')\n" * 500)
    (workspace / "train.py").chmod(0o755)
    (workspace / "notas-de-ção.txt").write_text("acentuação\n")
    (workspace / "empty-dir").mkdir()
    (workspace / "empty-file").write_bytes(b"")
    (workspace / "latest").symlink_to("checkpoints/model.bin")


def running_instance(account, **body) -> dict:
    created = account.client.post("/api/instances", body, format="json")
    assert created.status_code == 202, created.content
    instance_id = created.json()["id"]
    wait_until(
        lambda: Instance.objects.get(pk=instance_id).status == Instance.Status.RUNNING,
        timeout=60,
    )
    return account.client.get(f"/api/instances/{instance_id}").json()


def workspace_of(platform, instance: dict) -> Path:
    return Path(platform.get(f"/v1/machines/{instance['provider_id']}")["folder"]) / "workspace"


def test_snapshot_delete_the_instance_and_restore_on_another_gpu_elsewhere(
    two_tenants, snapshot_platform
):
    a, b = two_tenants
    WebhookEndpoint.objects.create(
        tenant=a.tenant, url="https://hooks.example.com/in", events=["snapshot.completed"]
    )
    source = running_instance(a, gpu="RTX 4090", region="US-East", max_price=2.0)
    workspace = workspace_of(snapshot_platform, source)
    fill_workspace(workspace)
    original = tree_digest(workspace)

    created = a.client.post(
        "/api/snapshots", {"instance_id": source["id"], "name": "before-delete"}, format="json"
    )
    assert created.status_code == 202, created.content
    snapshot_id = created.json()["id"]
    assert created.json()["status"] == "pending"
    wait_until(
        lambda: a.client.get(f"/api/snapshots/{snapshot_id}").json()["status"] == "completed",
        timeout=60,
    )
    snapshot = a.client.get(f"/api/snapshots/{snapshot_id}").json()
    assert snapshot["progress_percent"] == 100.0
    assert snapshot["size_bytes"] == sum(
        path.stat().st_size
        for path in workspace.rglob("*")
        if path.is_file() and not path.is_symlink()
    )
    assert snapshot["added_bytes"] > 0
    assert (snapshot["source_gpu"], snapshot["source_region"]) == ("RTX 4090", "US-East")
    (delivery,) = WebhookDelivery.objects.for_tenant(a.tenant).filter(event="snapshot.completed")
    assert delivery.payload["data"]["id"] == snapshot_id
    assert SnapshotRepository.objects.get(tenant=a.tenant).stored_bytes > 0

    assert a.client.delete(f"/api/instances/{source['id']}").status_code == 202
    wait_until(lambda: not workspace.exists(), timeout=60)

    assert b.client.post(f"/api/snapshots/{snapshot_id}/restore", {}).status_code == 404
    restored = a.client.post(
        f"/api/snapshots/{snapshot_id}/restore",
        {"gpu": "A100", "region": "EU-West"},
        format="json",
    )
    assert restored.status_code == 202, restored.content
    body = restored.json()
    assert (body["gpu"], body["requested_region"]) == ("A100", "EU-West")
    assert body["restore"]["status"] == "waiting"

    def restore_done():
        restores = a.client.get(f"/api/snapshots/{snapshot_id}").json()["restores"]
        return restores and restores[0]["status"] == "completed"

    wait_until(restore_done, timeout=90)
    target = a.client.get(f"/api/instances/{body['id']}").json()
    assert target["status"] == "running"
    assert tree_digest(workspace_of(snapshot_platform, target)) == original


def test_a_running_instance_syncs_its_workspace_continuously(owner, snapshot_platform):
    instance = running_instance(owner, gpu="RTX 4090", region="US-East", max_price=2.0)
    workspace = workspace_of(snapshot_platform, instance)
    (workspace / "data.txt").write_text("first")

    wait_until(lambda: Instance.objects.get(pk=instance["id"]).last_sync_at, timeout=60)
    first = Instance.objects.get(pk=instance["id"])
    (workspace / "data.txt").write_text("second, after the first sync")
    wait_until(
        lambda: (
            Instance.objects.get(pk=instance["id"]).last_sync_snapshot_id
            != first.last_sync_snapshot_id
        ),
        timeout=60,
    )

    detail = owner.client.get(f"/api/instances/{instance['id']}").json()
    assert detail["last_sync_at"] is not None and detail["sync_lag_seconds"] is not None


@pytest.mark.django_db
def test_only_a_running_instance_can_be_snapshotted(owner, snapshot_store):
    stopped = InstanceFactory(tenant=owner.tenant, status=Instance.Status.HIBERNATED)

    response = owner.client.post("/api/snapshots", {"instance_id": stopped.pk}, format="json")

    assert response.status_code == 409 and response.json()["code"] == "instance_not_running"
    assert Snapshot.objects.count() == 0


@pytest.mark.django_db
def test_another_tenants_instance_is_not_found(two_tenants, snapshot_store):
    a, b = two_tenants
    theirs = InstanceFactory(tenant=a.tenant, status=Instance.Status.RUNNING)

    response = b.client.post("/api/snapshots", {"instance_id": theirs.pk}, format="json")

    assert response.status_code == 404 and Snapshot.objects.count() == 0


@pytest.mark.django_db
def test_a_snapshot_in_progress_can_be_neither_deleted_nor_restored(owner, snapshot_store):
    instance = InstanceFactory(tenant=owner.tenant, status=Instance.Status.RUNNING)
    snapshot = Snapshot.objects.create(
        tenant=owner.tenant, instance=instance, name="busy", source_gpu="RTX 4090"
    )

    deleted = owner.client.delete(f"/api/snapshots/{snapshot.pk}")
    restored = owner.client.post(f"/api/snapshots/{snapshot.pk}/restore", {}, format="json")

    assert deleted.status_code == 409 and deleted.json()["code"] == "snapshot_busy"
    assert restored.status_code == 409 and restored.json()["code"] == "snapshot_not_ready"
    assert Snapshot.objects.get().status == "pending"


def test_a_snapshot_whose_repository_is_gone_is_still_deleted(owner, snapshot_store):
    from snapshots import tasks

    snapshot = Snapshot.objects.create(
        tenant=owner.tenant,
        name="orphan",
        source_gpu="RTX 4090",
        status=Snapshot.Status.COMPLETED,
        engine_snapshot_id="f" * 64,
    )

    response = owner.client.delete(f"/api/snapshots/{snapshot.pk}")
    tasks.forget_snapshot(owner.tenant.pk, snapshot.pk)  # what the worker runs next

    assert response.status_code in (200, 202, 204)
    assert Snapshot.objects.get(pk=snapshot.pk).status == Snapshot.Status.DELETED


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body", [{}, {"instance_id": ""}, {"instance_id": "x" * 40}, {"instance_id": ["a"]}]
)
def test_bad_snapshot_requests_are_a_400(owner, body):
    response = owner.client.post("/api/snapshots", body, format="json")

    assert response.status_code == 400 and response.json()["code"]
