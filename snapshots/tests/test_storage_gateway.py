"""The storage gateway: what a machine's storage token lets it do with the platform's store.

Against the real gateway (Django's test client, or the live server for the engine and the
agent), over a folder and over a real S3 server (moto), with the control plane's own keys.
"""

import asyncio
import json
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import AsyncClient, Client

from accounts.models import Tenant
from conftest import wait_until
from dumont_agent.engine import CommandEngine, LibraryEngine
from dumont_agent.jobs import Jobs, Sync
from dumont_agent.storage import StorageAccess
from instances.agent_tokens import agent_token, hash_agent_token, standby_token
from instances.commands import arguments_for
from instances.models import AgentCommand, Instance
from instances.tests.factories import InstanceFactory, StandbyFactory
from snapshots import repositories, storage_tokens
from snapshots.engine import Repository, open_store
from snapshots.engine.tests.conftest import (  # noqa: F401  (moto_endpoint: the fixture)
    REPOSITORY_OPTIONS,
    make_workspace,
    moto_endpoint,
    tree_digest,
)
from snapshots.services import SYNC_COMMAND, SYNC_TAG, instance_tag

GATEWAY = "/storage/v1/"


@pytest.fixture(params=["folder", "s3"])
def platform_store(request, tmp_path, settings) -> str:
    """The platform's store (every tenant's repository) in a folder, or in a moto bucket."""
    if request.param == "folder":
        settings.SNAPSHOT_STORE_URL = str(tmp_path / "platform-store")
        return request.param
    endpoint = request.getfixturevalue("moto_endpoint")
    bucket = f"platform-{secrets.token_hex(4)}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    ).create_bucket(Bucket=bucket)
    settings.SNAPSHOT_STORE_URL = f"s3://{bucket}/repositories"
    settings.SNAPSHOT_S3_ENDPOINT_URL = endpoint
    settings.SNAPSHOT_S3_REGION = "us-east-1"
    settings.SNAPSHOT_S3_ACCESS_KEY_ID = "test"
    settings.SNAPSHOT_S3_SECRET_ACCESS_KEY = "test"
    return request.param


@dataclass
class Machine:
    instance: Instance
    agent_token: str  # dia_...
    storage_token: str  # dst_...

    def call(self, method: str, key: str, body: bytes | None = None, **headers):
        client = Client(HTTP_AUTHORIZATION=f"Bearer {self.storage_token}")
        if body is None:
            return getattr(client, method)(f"{GATEWAY}{key}", **headers)
        return getattr(client, method)(
            f"{GATEWAY}{key}", body, content_type="application/octet-stream", **headers
        )

    def listed(self, prefix: str = "") -> list[str]:
        response = self.call("get", f"?prefix={prefix}")
        assert response.status_code == 200, response.content
        return [item["key"] for item in response.json()["objects"]]


def body(response) -> bytes:
    """A response's bytes: whole objects are streamed."""
    return b"".join(response.streaming_content) if response.streaming else response.content


def machine_of(tenant: Tenant, **fields) -> Machine:
    """A running instance of `tenant` with its agent token, and a storage token issued to it."""
    instance = InstanceFactory(tenant=tenant, status=Instance.Status.RUNNING, **fields)
    token = agent_token(instance.pk, instance.provision_key)
    Instance.objects.filter(pk=instance.pk).update(agent_token_hash=hash_agent_token(token))
    instance.refresh_from_db()
    storage_token, _ = storage_tokens.issue(
        tenant.pk, storage_tokens.Machine("instance", instance.pk, instance.agent_token_hash)
    )
    return Machine(instance, token, storage_token)


def platform_repository(tenant_id: int) -> Repository:
    """The tenant's repository, made by the control plane with the platform's keys (small
    chunks and packs, so a backup writes many objects)."""
    store = repositories._store(repositories.access_for(tenant_id))
    return Repository.init(store, repositories.secret_for(tenant_id), **REPOSITORY_OPTIONS)


def a_repository_with_a_snapshot(tenant_id: int, workspace: Path) -> dict[str, bytes]:
    """Every object of the tenant's repository after one backup: {key: bytes}."""
    repository = platform_repository(tenant_id)
    make_workspace(workspace)
    repository.backup(workspace, tags=["customer"])
    return {item.key: repository.store.get(item.key) for item in repository.store.list("")}


def test_a_machine_of_another_tenant_can_neither_list_read_overwrite_nor_delete_a_repository(
    platform_store, two_tenants, tmp_path
):
    a, b = two_tenants
    objects_of_a = a_repository_with_a_snapshot(a.tenant.pk, tmp_path / "workspace")
    machine_a, machine_b = machine_of(a.tenant), machine_of(b.tenant)
    pack = next(key for key in objects_of_a if key.startswith("data/"))
    manifest = next(key for key in objects_of_a if key.startswith("snapshots/"))

    read_by_b = machine_b.call("get", pack)
    head_by_b = machine_b.call("head", "config")
    written_by_b = machine_b.call("put", manifest, b"tenant B's bytes")
    deleted_by_b = machine_b.call("delete", pack)
    escaped_by_b = machine_b.call("get", f"data/../../tenant-{a.tenant.pk}/config")
    listed_by_b = machine_b.listed()

    assert sorted(machine_a.listed()) == sorted(objects_of_a)
    assert body(machine_a.call("get", pack)) == objects_of_a[pack]
    assert listed_by_b == [manifest]  # only what B itself just wrote, in its own repository
    assert read_by_b.status_code == 404
    assert head_by_b.status_code == 404
    assert written_by_b.status_code == 201
    assert deleted_by_b.status_code == 403
    assert escaped_by_b.status_code == 400
    after = repositories.open_repository(a.tenant.pk)
    assert {item.key: after.store.get(item.key) for item in after.store.list("")} == objects_of_a


def test_a_machine_can_neither_overwrite_nor_delete_its_own_tenants_objects(
    platform_store, owner, tmp_path
):
    objects = a_repository_with_a_snapshot(owner.tenant.pk, tmp_path / "workspace")
    machine = machine_of(owner.tenant)
    pack = next(key for key in objects if key.startswith("data/"))

    overwritten = [
        machine.call("put", key, b"ransom note") for key in ("config", pack, "index/" + "0" * 32)
    ]
    deleted = [machine.call("delete", key) for key in ("config", pack)]

    assert [response.status_code for response in overwritten[:2]] == [412, 412]
    assert {response.json()["code"] for response in overwritten[:2]} == {"object_exists"}
    assert overwritten[2].status_code == 201  # a new object: appending is allowed
    assert [response.status_code for response in deleted] == [403, 403]
    assert {response.json()["code"] for response in deleted} == {"append_only"}
    assert body(machine.call("get", "config")) == objects["config"]
    assert body(machine.call("get", pack)) == objects[pack]


def test_a_machine_writes_replaces_and_removes_its_leases_under_locks(platform_store, owner):
    machine = machine_of(owner.tenant)

    created = machine.call("put", "locks/backup-0a1b", b'{"refreshed_at": 1}')
    refreshed = machine.call("put", "locks/backup-0a1b", b'{"refreshed_at": 2}')
    exclusive = machine.call(
        "put", "locks/backup-0a1b", b'{"refreshed_at": 3}', HTTP_IF_NONE_MATCH="*"
    )
    content = body(machine.call("get", "locks/backup-0a1b"))
    removed = machine.call("delete", "locks/backup-0a1b")

    assert (created.status_code, refreshed.status_code, removed.status_code) == (201, 201, 204)
    assert exclusive.status_code == 412
    assert content == b'{"refreshed_at": 2}'
    assert machine.call("head", "locks/backup-0a1b").status_code == 404


def test_reads_of_a_range_answer_206_with_those_bytes(owner, settings, tmp_path):
    settings.SNAPSHOT_STORE_URL = str(tmp_path / "platform-store")
    machine = machine_of(owner.tenant)
    machine.call("put", "data/ab/ab0c", bytes(range(100)))

    part = machine.call("get", "data/ab/ab0c", HTTP_RANGE="bytes=10-19")
    tail = machine.call("get", "data/ab/ab0c", HTTP_RANGE="bytes=95-")
    past_the_end = machine.call("get", "data/ab/ab0c", HTTP_RANGE="bytes=200-299")
    head = machine.call("head", "data/ab/ab0c")

    assert (part.status_code, body(part)) == (206, bytes(range(10, 20)))
    assert (tail.status_code, body(tail)) == (206, bytes(range(95, 100)))
    assert tail["Content-Range"] == "bytes 95-99/100"
    assert past_the_end.status_code == 416
    assert (head.status_code, head["Content-Length"]) == (200, "100")


def test_listings_come_in_pages_joined_by_a_cursor(owner, settings, tmp_path):
    settings.SNAPSHOT_STORE_URL = str(tmp_path / "platform-store")
    machine = machine_of(owner.tenant)
    names = [f"index/{number:04x}" for number in range(7)]
    for name in names:
        machine.call("put", name, b"x")

    pages, cursor = [], ""
    while True:
        page = machine.call("get", f"?prefix=index/&limit=3&cursor={cursor}").json()
        pages.append([item["key"] for item in page["objects"]])
        cursor = page["next_cursor"]
        if not cursor:
            break

    assert pages == [names[0:3], names[3:6], names[6:7]]


@pytest.mark.parametrize(
    "token_of",
    [
        pytest.param(lambda machine, tenant: "", id="none"),
        pytest.param(lambda machine, tenant: machine.agent_token, id="agent-token"),
        pytest.param(lambda machine, tenant: machine.storage_token + "x", id="bad-signature"),
        pytest.param(
            lambda machine, tenant: storage_tokens.issue(
                tenant.pk,
                storage_tokens.Machine(
                    "instance", machine.instance.pk, machine.instance.agent_token_hash
                ),
                now=time.time() - 7200,
            )[0],
            id="expired",
        ),
        pytest.param(
            lambda machine, tenant: _with_tenant(machine.storage_token, tenant.pk + 1),
            id="another-tenant-written-in",
        ),
    ],
)
def test_a_missing_tampered_or_expired_token_is_a_401(owner, settings, tmp_path, token_of):
    settings.SNAPSHOT_STORE_URL = str(tmp_path / "platform-store")
    machine = machine_of(owner.tenant)
    machine.call("put", "snapshots/" + "a" * 32, b"manifest")
    machine.storage_token = token_of(machine, owner.tenant)

    responses = [
        machine.call("get", "snapshots/" + "a" * 32),
        machine.call("get", "?prefix="),
        machine.call("put", "snapshots/" + "b" * 32, b"manifest"),
        machine.call("delete", "locks/backup-1"),
    ]

    assert [response.status_code for response in responses] == [401] * 4
    assert {response.json()["code"] for response in responses} == {"invalid_token"}


def _with_tenant(token: str, tenant_id: int) -> str:
    """`token` with another tenant in its payload and its original signature."""
    import base64

    payload, signature = token.removeprefix("dst_").split(".")
    document = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    document["t"] = tenant_id
    forged = base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()
    return f"dst_{forged}.{signature}"


def test_the_token_of_a_replaced_or_deleted_machine_is_a_401(owner, settings, tmp_path):
    settings.SNAPSHOT_STORE_URL = str(tmp_path / "platform-store")
    replaced, deleted = machine_of(owner.tenant), machine_of(owner.tenant)
    before = (replaced.call("get", "?prefix="), deleted.call("get", "?prefix="))

    # A new provisioning attempt: a new machine with a new agent token.
    Instance.objects.filter(pk=replaced.instance.pk).update(agent_token_hash="f" * 64)
    Instance.objects.filter(pk=deleted.instance.pk).update(status=Instance.Status.DELETED)
    after = (replaced.call("get", "?prefix="), deleted.call("get", "?prefix="))

    assert [response.status_code for response in before] == [200, 200]
    assert [response.status_code for response in after] == [401, 401]


@pytest.mark.parametrize(
    "key",
    [
        "data/../../tenant-1/config",
        "../tenant-1/config",
        "data/%2e%2e/%2e%2e/tenant-1/config",
        "/etc/passwd",
        "data//pack",
        "data/./pack",
        "data/.tmp-pack",
        "data",
        "config/x",
        "elsewhere/x",
        "data/" + "a" * 600,
        "data/ab",
        "data/ab/cd01",
        "index/ab/cd",
    ],
)
def test_a_key_that_is_not_an_object_of_a_repository_is_a_400(owner, settings, tmp_path, key):
    settings.SNAPSHOT_STORE_URL = str(tmp_path / "platform-store")
    machine = machine_of(owner.tenant)

    responses = [machine.call("get", key), machine.call("put", key, b"x")]

    assert [response.status_code for response in responses] == [400, 400]
    assert {response.json()["code"] for response in responses} == {"invalid_key"}
    assert not list((tmp_path / "platform-store").rglob("config"))


def test_a_listing_prefix_that_escapes_is_a_400(owner, settings, tmp_path):
    settings.SNAPSHOT_STORE_URL = str(tmp_path / "platform-store")
    machine = machine_of(owner.tenant)

    response = machine.call("get", "?prefix=../")

    assert (response.status_code, response.json()["code"]) == (400, "invalid_key")


def test_an_upload_larger_than_the_limit_is_a_413(owner, settings, tmp_path):
    settings.SNAPSHOT_STORE_URL = str(tmp_path / "platform-store")
    settings.STORAGE_MAX_OBJECT_BYTES = 1000
    machine = machine_of(owner.tenant)

    response = machine.call("put", "data/ab/ab1g", b"x" * 1001)

    assert (response.status_code, response.json()["code"]) == (413, "object_too_large")
    assert machine.call("head", "data/ab/ab1g").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_pack_far_above_the_request_body_limit_uploads_through_asgi(owner, settings, tmp_path):
    """Production serves the gateway under ASGI; DATA_UPLOAD_MAX_MEMORY_SIZE (form posts) must
    not refuse or buffer a pack."""
    settings.SNAPSHOT_STORE_URL = str(tmp_path / "platform-store")
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    machine = machine_of(owner.tenant)
    pack = secrets.token_bytes(5 * 1024 * 1024)
    authorization = {"Authorization": f"Bearer {machine.storage_token}"}

    async def upload_then_read():
        client = AsyncClient()
        put = await client.put(
            f"{GATEWAY}data/ab/ab77", pack, "application/octet-stream", headers=authorization
        )
        read = await client.get(f"{GATEWAY}data/ab/ab77", headers=authorization)
        await sync_to_async(close_connections)()  # in the thread that ran the view
        return put, read

    put, read = asyncio.run(upload_then_read())

    assert put.status_code == 201
    assert body(read) == pack


def close_connections() -> None:
    connections.close_all()


# --- The engine and the agent through the gateway (a real HTTP server) ---------------------


def test_a_backup_through_the_gateway_restores_byte_identical(
    platform_store, owner, live_server, tmp_path
):
    platform_repository(owner.tenant.pk)
    machine = machine_of(owner.tenant)
    workspace = make_workspace(tmp_path / "workspace")
    store = open_store(f"{live_server.url}{GATEWAY}", token=machine.storage_token)
    repository = Repository.open(store, repositories.secret_for(owner.tenant.pk))

    first = repository.backup(workspace, tags=[SYNC_TAG])
    (workspace / "notes" / "note-3.txt").write_text("changed after the first backup\n")
    second = repository.backup(workspace, tags=[SYNC_TAG])
    restored = tmp_path / "restored"
    result = repository.restore(second.id, restored)

    assert [info.id for info in repository.snapshots()] == [first.id, second.id]
    assert result.files > 20
    assert tree_digest(restored) == tree_digest(workspace)
    assert not list(store.list("locks/")), "each backup removed its lease"
    assert store.stat("config").size == len(store.get("config"))
    assert store.get_range("config", 2, 5) == store.get("config")[2:7]
    assert len(list(store.list("data/"))) > 3


def test_the_control_plane_still_forgets_and_collects_with_the_platform_keys(
    platform_store, owner, live_server, tmp_path, settings
):
    platform_repository(owner.tenant.pk)
    machine = machine_of(owner.tenant)
    workspace = make_workspace(tmp_path / "workspace")
    store = open_store(f"{live_server.url}{GATEWAY}", token=machine.storage_token)
    repository = Repository.open(store, repositories.secret_for(owner.tenant.pk))
    first = repository.backup(workspace, tags=[SYNC_TAG])
    (workspace / "checkpoints" / "model.bin").write_bytes(b"a new model" * 1000)
    second = repository.backup(workspace, tags=[SYNC_TAG])

    refused = machine.call("delete", f"snapshots/{first.id}")
    repositories.forget(owner.tenant.pk, [first.id])
    measured = repositories.measure(owner.tenant.pk)

    assert refused.status_code == 403
    assert machine.listed("snapshots/") == [f"snapshots/{second.id}"]
    assert measured > 0
    assert repositories.open_repository(owner.tenant.pk).verify(read_data=True).is_ok
    repository.invalidate()
    repository.restore(second.id, tmp_path / "restored")
    assert tree_digest(tmp_path / "restored") == tree_digest(workspace)


def _sync_command(machine: Machine) -> AgentCommand:
    return AgentCommand.objects.create(
        tenant_id=machine.instance.tenant_id,
        instance=machine.instance,
        kind=SYNC_COMMAND,
        args={"interval_seconds": 3600, "tags": [SYNC_TAG, instance_tag(machine.instance.pk)]},
    )


def test_commands_hand_machines_the_gateway_and_a_token_not_the_platform_keys(owner, settings):
    settings.SNAPSHOT_STORE_URL = "s3://platform-bucket/repositories"
    settings.SNAPSHOT_S3_ACCESS_KEY_ID = "AKIA-PLATFORM"
    settings.SNAPSHOT_S3_SECRET_ACCESS_KEY = "platform-secret-key"
    settings.DUMONT_PUBLIC_URL = "https://dumont.example"
    machine = machine_of(owner.tenant)

    args = arguments_for(_sync_command(machine))

    assert args["repository"] == "https://dumont.example/storage/v1/"
    assert storage_tokens.verify(args["storage_token"]).tenant_id == owner.tenant.pk
    assert args["secret"] == repositories.secret_for(owner.tenant.pk)
    handed = json.dumps(args)
    for platform_value in ("AKIA-PLATFORM", "platform-secret-key", "s3://", "platform-bucket"):
        assert platform_value not in handed


def test_an_agent_gets_a_fresh_token_for_its_own_machine(owner, two_tenants):
    machine = machine_of(owner.tenant)
    standby = StandbyFactory(instance=machine.instance)
    standby_agent = standby_token(standby.pk, standby.provision_key)
    standby.agent_token_hash = hash_agent_token(standby_agent)
    standby.save(update_fields=["agent_token_hash"])

    for_instance = Client(HTTP_AUTHORIZATION=f"Bearer {machine.agent_token}").post(
        "/api/agent/storage-token"
    )
    for_standby = Client(HTTP_AUTHORIZATION=f"Bearer {standby_agent}").post(
        "/api/agent/storage-token"
    )
    for_a_customer = two_tenants[1].client.post("/api/agent/storage-token")

    assert for_instance.status_code == 200
    assert set(for_instance.json()) == {
        "repository",
        "storage_token",
        "storage_token_seconds",
        "secret",
    }
    grants = [
        storage_tokens.verify(response.json()["storage_token"])
        for response in (for_instance, for_standby)
    ]
    assert [(grant.tenant_id, grant.machine_kind) for grant in grants] == [
        (owner.tenant.pk, "instance"),
        (owner.tenant.pk, "standby"),
    ]
    assert (for_a_customer.status_code, for_a_customer.json()["code"]) == (401, "invalid_token")


def test_a_restarted_agent_resumes_its_sync_without_any_secret_on_disk(
    owner, live_server, settings, tmp_path
):
    settings.SNAPSHOT_STORE_URL = str(tmp_path / "platform-store")
    settings.DUMONT_PUBLIC_URL = live_server.url
    platform_repository(owner.tenant.pk)
    machine = machine_of(owner.tenant)
    workspace = make_workspace(tmp_path / "workspace")
    handed_out = arguments_for(_sync_command(machine))
    state = tmp_path / "agent-state"

    first = _agent_sync(machine, workspace, state, handed_out)
    saved = (state / "sync.json").read_text()
    (workspace / "after-restart.txt").write_text("written after the agent restarted\n")
    second = _agent_sync(machine, workspace, state, None)  # a new process: only the file

    assert "snapshot_id" in first and "snapshot_id" in second
    assert first["snapshot_id"] != second["snapshot_id"]
    for secret in (handed_out["secret"], handed_out["storage_token"], "storage/v1"):
        assert secret not in saved
    assert json.loads(saved)["tags"] == [SYNC_TAG, instance_tag(machine.instance.pk)]
    synced = repositories.open_repository(owner.tenant.pk).snapshots()
    assert [info.id for info in synced] == [first["snapshot_id"], second["snapshot_id"]]


def _agent_sync(machine: Machine, workspace: Path, state: Path, handed_out: dict | None) -> dict:
    """The first sync of an agent process's sync loop (configured by `handed_out`, else
    resumed from its state file), then the loop is stopped."""
    engine = LibraryEngine(StorageAccess(live_url(), machine.agent_token))
    sync = Sync(engine, workspace, state, Jobs(engine, workspace))
    try:
        if handed_out is not None:
            sync.configure(handed_out)
        return wait_until(sync.pending, timeout=60)
    finally:
        sync.stop.set()
        sync.wake.set()


def live_url() -> str:
    from django.conf import settings

    return settings.DUMONT_PUBLIC_URL


def test_a_long_running_engine_renews_its_token_before_the_handed_out_one_expires(
    owner, live_server, settings, tmp_path
):
    settings.SNAPSHOT_STORE_URL = str(tmp_path / "platform-store")
    settings.DUMONT_PUBLIC_URL = live_server.url
    settings.STORAGE_TOKEN_SECONDS = 2
    platform_repository(owner.tenant.pk)
    machine = machine_of(owner.tenant)
    workspace = make_workspace(tmp_path / "workspace")
    handed_out = arguments_for(_sync_command(machine))
    engine = LibraryEngine(StorageAccess(live_server.url, machine.agent_token))

    first = engine.backup(handed_out, str(workspace), [SYNC_TAG], lambda report: None)
    time.sleep(2.5)
    (workspace / "later.txt").write_text("after the first token expired\n")
    second = engine.backup(handed_out, str(workspace), [SYNC_TAG], lambda report: None)

    machine.storage_token = handed_out["storage_token"]
    assert machine.call("get", "config").status_code == 401  # the handed-out token expired
    assert first["id"] != second["id"]
    assert second["summary"]["files"] == first["summary"]["files"] + 1


def test_an_engine_run_as_a_command_gets_its_token_in_its_environment(
    owner, live_server, settings, tmp_path
):
    settings.SNAPSHOT_STORE_URL = str(tmp_path / "platform-store")
    settings.DUMONT_PUBLIC_URL = live_server.url
    platform_repository(owner.tenant.pk)
    machine = machine_of(owner.tenant)
    workspace = make_workspace(tmp_path / "workspace")
    engine = CommandEngine(
        [sys.executable, "-m", "snapshots.engine"],
        StorageAccess(live_server.url, machine.agent_token),
    )
    resumed = {"tags": [SYNC_TAG]}  # no access at all: the engine asks the API for it

    info = engine.backup(resumed, str(workspace), [SYNC_TAG], lambda report: None)
    engine.restore(resumed, info["id"], str(tmp_path / "restored"), lambda report: None)

    assert tree_digest(tmp_path / "restored") == tree_digest(workspace)
