import datetime as dt
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from snapshots.engine import DamagedData, LocalStore, Repository, RetentionPolicy, formats
from snapshots.engine.formats import SnapshotInfo
from snapshots.engine.maintenance import select_kept
from snapshots.engine.tests.conftest import (
    REPOSITORY_OPTIONS,
    SECRET,
    make_workspace,
    tree_digest,
    write_random,
)

ROOT = Path(__file__).resolve().parents[3]


def run_cli(*arguments: str, check: bool = False) -> subprocess.CompletedProcess:
    environment = {**os.environ, "DUMONT_SNAPSHOT_SECRET": SECRET}
    return subprocess.run(
        [sys.executable, "-m", "snapshots.engine", "--quiet", *arguments],
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        check=check,
        timeout=60,
    )


def first_chunk_of(repository: Repository, path: str, snapshot_id: str) -> formats.IndexEntry:
    entry = next(e for e in repository.manifest(snapshot_id).tree if e["path"] == path)
    return repository.index[bytes.fromhex(entry["chunks"][0])]


def test_a_flipped_byte_in_a_pack_fails_verify_and_restore_naming_the_pack_and_the_file(
    repository, local_store, workspace, tmp_path
):
    info = repository.backup(workspace)
    chunk = first_chunk_of(repository, "data/part-1.bin", info.id)
    pack_id = chunk.pack_id
    pack_path = local_store.root / formats.pack_key(pack_id)
    damaged = bytearray(pack_path.read_bytes())
    damaged[chunk.offset + chunk.length // 2] ^= 0x01
    pack_path.write_bytes(bytes(damaged))

    report = repository.verify(read_data=True)
    with pytest.raises(DamagedData) as restore_error:
        repository.restore(info.id, tmp_path / "restored")
    cli = run_cli("--repo", str(local_store.root), "verify", "--read-data")

    assert not report.is_ok
    assert report.damaged_packs == [pack_id]
    assert f"{info.id}:data/part-1.bin" in report.affected_paths
    assert restore_error.value.damaged_packs == [pack_id]
    assert "data/part-1.bin" in restore_error.value.affected_paths
    assert pack_id in str(restore_error.value)
    assert not (tmp_path / "restored" / "data" / "part-1.bin").exists()
    assert (tmp_path / "restored" / "run.sh").read_text() == "#!/bin/sh\necho hi\n"
    assert cli.returncode != 0
    assert pack_id in cli.stdout and "data/part-1.bin" in cli.stdout


def test_structural_verify_reports_a_missing_pack(repository, local_store, workspace):
    info = repository.backup(workspace)
    pack_id = first_chunk_of(repository, "checkpoints/model.bin", info.id).pack_id
    (local_store.root / formats.pack_key(pack_id)).unlink()

    report = repository.verify()

    assert report.damaged_packs == [pack_id]
    assert f"{info.id}:checkpoints/model.bin" in report.affected_paths


def test_the_cli_with_a_wrong_secret_exits_non_zero_with_one_line(repository, local_store):
    result = subprocess.run(
        [sys.executable, "-m", "snapshots.engine", "--repo", str(local_store.root), "snapshots"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={**os.environ, "DUMONT_SNAPSHOT_SECRET": "wrong"},
    )

    assert result.returncode == 1
    assert result.stderr == "error: wrong master secret: it does not unlock this repository\n"


def test_cli_backup_snapshots_restore_verify_diff_and_prune(tmp_path):
    repo = str(tmp_path / "repository")
    source = make_workspace(tmp_path / "workspace")
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")

    init = run_cli(
        "--repo", repo, "init", "--average-chunk-bytes", "16384", "--pack-bytes", "131072"
    )
    first = run_cli("--repo", repo, "backup", str(source), "--tag", "nightly")
    (source / "new.txt").write_text("new\n")
    (source / "run.sh").unlink()
    second = run_cli("backup", str(source), "--repo", repo, "--json")
    listed = run_cli("--repo", repo, "--json", "snapshots")
    diff = run_cli("--repo", repo, "diff", first.stdout.strip(), second.stdout and "latest")
    restore = run_cli("--repo", repo, "restore", "latest", str(tmp_path / "restored"))
    verify = run_cli("--repo", repo, "--secret-file", str(secret_file), "verify", "--read-data")
    prune = run_cli("--repo", repo, "prune", "--keep-last", "1", "--grace-seconds", "0")
    missing = run_cli("--repo", str(tmp_path / "nowhere"), "snapshots")

    assert [init.returncode, first.returncode, second.returncode] == [0, 0, 0]
    assert len(first.stdout.strip()) == 32
    import json

    snapshots = json.loads(listed.stdout)
    assert [snapshot["tags"] for snapshot in snapshots] == [["nightly"], []]
    assert snapshots[1]["summary"]["files_read"] == 1
    assert diff.returncode == 0
    assert diff.stdout.splitlines() == ["+ new.txt", "- run.sh"]
    assert restore.returncode == 0
    assert tree_digest(tmp_path / "restored") == tree_digest(source)
    assert (verify.returncode, verify.stdout.strip()) == (0, "no errors")
    assert prune.returncode == 0 and "forgot 1 snapshots" in prune.stdout
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: no repository at") and missing.stderr.count("\n") == 1


def _wait_for(condition, timeout_seconds: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def test_a_backup_killed_half_way_keeps_the_previous_snapshot_and_the_next_reuses_its_packs(
    tmp_path,
):
    store = LocalStore(tmp_path / "repository")
    repository = Repository.init(store, SECRET, **{**REPOSITORY_OPTIONS, "pack_bytes": 256 * 1024})
    source = make_workspace(tmp_path / "workspace")
    previous = repository.backup(source)
    previous_digest = tree_digest(source)
    for number in range(4):
        write_random(source / "big" / f"shard-{number}.bin", 24 * 1024 * 1024, seed=10 + number)
    fragments_before = len(list(store.list("index/")))

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "snapshots.engine",
            "--quiet",
            "--repo",
            str(store.root),
            "backup",
            str(source),
        ],
        env={**os.environ, "DUMONT_SNAPSHOT_SECRET": SECRET},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for(lambda: len(list(store.list("index/"))) >= fragments_before + 40)
    process.kill()
    process.wait()
    after_kill = Repository.open(store, SECRET)

    assert [info.id for info in after_kill.snapshots()] == [previous.id]
    after_kill.restore(previous.id, tmp_path / "previous", paths=None)
    assert tree_digest(tmp_path / "previous") == previous_digest

    finished = after_kill.backup(source)

    new_bytes = 4 * 24 * 1024 * 1024
    assert finished.summary["uploaded_bytes"] < new_bytes - 40 * 200 * 1024
    assert after_kill.verify(read_data=True).is_ok
    after_kill.restore(finished.id, tmp_path / "finished")
    assert tree_digest(tmp_path / "finished") == tree_digest(source)


def test_prune_during_a_concurrent_backup_loses_nothing(tmp_path):
    store = LocalStore(tmp_path / "repository", fsync=False)
    repository = Repository.init(store, SECRET, **REPOSITORY_OPTIONS)
    source = make_workspace(tmp_path / "workspace")
    old = repository.backup(source)
    (source / "checkpoints" / "model.bin").unlink()  # its chunks become garbage once `old` goes
    kept = repository.backup(source)
    for number in range(3):
        write_random(source / "big" / f"shard-{number}.bin", 6 * 1024 * 1024, seed=20 + number)
    write_random(source / "checkpoints" / "model.bin", 600_000, seed=1)  # dedups against `old`
    running = Repository.open(store, SECRET, workers=1, transfer_workers=1)
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(info=running.backup(source)))

    thread.start()
    _wait_for(lambda: any(item.key.startswith("locks/backup-") for item in store.list("locks/")))
    pruned = Repository.open(store, SECRET).prune(RetentionPolicy(keep_last=1), grace_seconds=0)
    thread.join()

    assert pruned.forgotten == [old.id]
    assert pruned.gc_deferred
    final = Repository.open(store, SECRET)
    assert final.verify(read_data=True).is_ok
    for info in final.snapshots():
        target = tmp_path / f"restored-{info.id}"
        final.restore(info.id, target)
        if info.id == outcome["info"].id:
            assert tree_digest(target) == tree_digest(source)
    assert [info.id for info in final.snapshots()] == [kept.id, outcome["info"].id]


def test_garbage_collection_deletes_only_packs_no_remaining_snapshot_uses(tmp_path):
    store = LocalStore(tmp_path / "repository", fsync=False)
    repository = Repository.init(store, SECRET, **REPOSITORY_OPTIONS)
    source = make_workspace(tmp_path / "workspace")
    old = repository.backup(source)
    write_random(source / "checkpoints" / "model.bin", 600_000, seed=99)
    new = repository.backup(source)
    packs_before = len(list(store.list("data/")))

    young = repository.prune(RetentionPolicy(keep_last=1), grace_seconds=3600)
    collected = repository.prune(RetentionPolicy(keep_last=1), grace_seconds=0)

    assert young.forgotten == [old.id] and young.deleted_packs == 0
    assert young.unreferenced_packs_kept > 0
    assert collected.deleted_packs > 0 and not collected.gc_deferred
    assert len(list(store.list("data/"))) == packs_before - collected.deleted_packs
    assert [item.key[:8] for item in store.list("index/")] == ["index/c-"]
    assert repository.verify(read_data=True).is_ok
    repository.restore(new.id, tmp_path / "restored")
    assert tree_digest(tmp_path / "restored") == tree_digest(source)


def test_a_backup_after_another_process_collected_garbage_does_not_use_what_it_deleted(tmp_path):
    # The backing-up process keeps the index objects it has read (they never change); after a
    # collection elsewhere deleted packs and folded the index, it must see neither any more.
    store = LocalStore(tmp_path / "repository", fsync=False)
    syncing = Repository.init(store, SECRET, **REPOSITORY_OPTIONS)
    source = make_workspace(tmp_path / "workspace")
    syncing.backup(source)
    (source / "checkpoints" / "model.bin").unlink()
    syncing.backup(source)
    collected = Repository.open(store, SECRET).prune(RetentionPolicy(keep_last=1), grace_seconds=0)
    write_random(source / "checkpoints" / "model.bin", 600_000, seed=1)  # the collected content

    after = syncing.backup(source)

    assert collected.deleted_packs > 0
    assert after.summary["chunks_new"] > 0  # stored again, not pointed at deleted packs
    final = Repository.open(store, SECRET)
    assert final.verify(read_data=True).is_ok
    final.restore(after.id, tmp_path / "restored")
    assert tree_digest(tmp_path / "restored") == tree_digest(source)


def _snapshot_at(moment: str) -> SnapshotInfo:
    return SnapshotInfo(
        id=moment,
        time=dt.datetime.fromisoformat(moment).isoformat(),
        source="/w",
        hostname="h",
        parent=None,
    )


def test_retention_keeps_the_last_n_and_the_newest_of_each_day_and_week():
    snapshots = [
        _snapshot_at(moment)
        for moment in [
            "2026-11-02T10:00:00+00:00",  # week 44
            "2026-11-09T09:00:00+00:00",  # week 46, Monday
            "2026-11-12T08:00:00+00:00",  # week 46
            "2026-11-13T08:00:00+00:00",
            "2026-11-13T20:00:00+00:00",
            "2026-11-14T07:00:00+00:00",
            "2026-11-14T12:00:00+00:00",
            "2026-11-14T23:30:00+00:00",
        ]
    ]

    kept = select_kept(snapshots, RetentionPolicy(keep_last=2, keep_daily=3, keep_weekly=3))

    assert sorted(kept) == [
        "2026-11-02T10:00:00+00:00",  # newest of week 44 (third week)
        "2026-11-12T08:00:00+00:00",  # newest of 12 Nov (third day)
        "2026-11-13T20:00:00+00:00",  # newest of 13 Nov
        "2026-11-14T12:00:00+00:00",  # last 2
        "2026-11-14T23:30:00+00:00",  # last 2, newest of 14 Nov and of week 46
    ]


def test_prune_with_explicit_backup_times_keeps_one_per_day(repository, workspace):
    times = ["2026-11-13T08:00:00", "2026-11-13T20:00:00", "2026-11-14T09:00:00"]
    infos = [
        repository.backup(workspace, time=dt.datetime.fromisoformat(moment).replace(tzinfo=dt.UTC))
        for moment in times
    ]

    result = repository.prune(RetentionPolicy(keep_daily=5), grace_seconds=0)

    assert result.forgotten == [infos[0].id]
    assert [info.id for info in repository.snapshots()] == [infos[1].id, infos[2].id]


def test_the_engine_and_its_cli_import_without_django():
    probe = (
        "import sys, snapshots.engine, snapshots.engine.cli, snapshots.engine.store;"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'django'))"
    )

    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        env={key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"},
    )

    assert result.stdout.strip() == "[]"


def test_a_backup_waits_while_garbage_collection_runs_and_then_completes(repository, workspace):
    collector = repository.acquire_lease("gc")
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(info=repository.backup(workspace)))

    thread.start()
    thread.join(timeout=1.5)
    waited = thread.is_alive()
    collector.release()
    thread.join(timeout=30)

    assert waited
    assert outcome["info"].summary["files"] == 26
    assert repository.verify(read_data=True).is_ok


def test_cli_backs_up_to_and_restores_from_an_s3_url(s3_store, workspace, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    endpoint = s3_store.client.meta.endpoint_url
    common = ("--repo", f"s3://{s3_store.bucket}/{s3_store.prefix}", "--endpoint-url", endpoint)

    init = run_cli(*common, "init", "--average-chunk-bytes", "16384")
    backup = run_cli(*common, "backup", str(workspace))
    restore = run_cli(*common, "restore", backup.stdout.strip(), str(tmp_path / "restored"))
    missing_bucket = run_cli(
        "--repo", "s3://no-such-bucket/x", "--endpoint-url", endpoint, "snapshots"
    )

    assert [init.returncode, backup.returncode, restore.returncode] == [0, 0, 0]
    assert tree_digest(tmp_path / "restored") == tree_digest(workspace)
    assert missing_bucket.returncode == 1
    assert missing_bucket.stderr.startswith("error: ") and missing_bucket.stderr.count("\n") == 1
