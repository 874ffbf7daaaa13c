"""Restore leaves nothing half-done: many files under a small descriptor limit, no temp of ours
taken for workspace content, no temp or partial file left by damaged data or a failing store."""

import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from snapshots.engine import DamagedData, LocalStore, Repository, formats
from snapshots.engine.tests.conftest import (
    REPOSITORY_OPTIONS,
    SECRET,
    make_workspace,
    tree_digest,
    write_random,
)

ROOT = Path(__file__).resolve().parents[3]
TEMP_NAME = re.compile(r"\..+\.restore-[0-9a-f]{8}")
DEFAULT_PACK_BYTES = 32 * 1024 * 1024

# Files a user may name like our temps (`.<name>.restore-<8 hex>`) without being one.
LOOK_ALIKES = (
    "x.restore-notes",
    ".x.restore-notes",
    "model.bin.restore-0a1b2c3d",  # no leading dot
    ".model.bin.restore-0a1b2c3",  # 7 hex digits
    ".model.bin.restore-0a1b2c3d4",  # 9
    ".model.bin.restore-0A1B2C3D",  # upper case
)

# Restores `snapshot` into `target` in a process of its own; at its first progress report (its
# first chunk is then in a temp file) it kills itself, or with "pause" reports and waits for a
# line on stdin before going on.
RESTORE_SCRIPT = """
import os, signal, sys, threading
from snapshots.engine import LocalStore, Repository
repository_path, secret, snapshot, target, mode = sys.argv[1:]
first = threading.Lock()
def progress(report):
    if not first.acquire(blocking=False):
        return
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    print("paused", flush=True)
    sys.stdin.readline()
result = Repository.open(LocalStore(repository_path), secret).restore(
    snapshot, target, progress=progress
)
print(result.files, flush=True)
"""


def start_restore(
    repository_path: Path, snapshot_id: str, target: Path, mode: str
) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            RESTORE_SCRIPT,
            str(repository_path),
            SECRET,
            snapshot_id,
            str(target),
            mode,
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def restore_temps(root: Path) -> list[str]:
    """Every file or symlink under `root` named as restore.py names its temps."""
    return sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if TEMP_NAME.fullmatch(path.name) and not path.is_dir()
    )


def many_small_files(root: Path, count: int) -> Path:
    for number in range(count):
        folder = root / f"package-{number // 500}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"module_{number}.py").write_text(f"VALUE = {number}\n" * (1 + number % 7))
    return root


def with_look_alikes(root: Path) -> Path:
    for name in LOOK_ALIKES:
        (root / name).write_text(f"the user's {name}\n")
    (root / ".folder.restore-0a1b2c3d").mkdir()  # we never make directories under that name
    (root / ".folder.restore-0a1b2c3d" / "inside.txt").write_text("kept\n")
    return root


def big_workspace(root: Path) -> Path:
    make_workspace(root)
    for number in range(8):
        write_random(root / "shards" / f"shard-{number}.bin", 2 * 1024 * 1024, seed=40 + number)
    return with_look_alikes(root)


@pytest.mark.parametrize("pack_bytes", [DEFAULT_PACK_BYTES, REPOSITORY_OPTIONS["pack_bytes"]])
def test_3000_small_files_restore_byte_identical_under_a_limit_of_256_open_files(
    tmp_path, pack_bytes
):
    store = LocalStore(tmp_path / "repository", fsync=False)
    repository = Repository.init(store, SECRET, **{**REPOSITORY_OPTIONS, "pack_bytes": pack_bytes})
    source = many_small_files(tmp_path / "workspace", 3000)
    info = repository.backup(source)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    restored = subprocess.run(
        [
            sys.executable,
            "-m",
            "snapshots.engine",
            "--quiet",
            "--repo",
            str(store.root),
            "restore",
            info.id,
            str(tmp_path / "restored"),
        ],
        env={**os.environ, "DUMONT_SNAPSHOT_SECRET": SECRET},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)),
    )

    assert restored.returncode == 0, restored.stderr
    assert tree_digest(tmp_path / "restored") == tree_digest(source)
    assert restore_temps(tmp_path / "restored") == []


def test_a_backup_of_a_tree_a_killed_restore_left_skips_our_temps_and_keeps_look_alikes(
    tmp_path,
):
    store = LocalStore(tmp_path / "repository", fsync=False)
    repository = Repository.init(store, SECRET, **REPOSITORY_OPTIONS)
    info = repository.backup(big_workspace(tmp_path / "workspace"))
    target = tmp_path / "target"
    target.mkdir()
    with_look_alikes(target)
    killed = start_restore(store.root, info.id, target, "kill")
    killed.communicate(timeout=120)
    assert killed.returncode == -9
    left = restore_temps(target)
    assert left, "the killed restore left no temp file to test with"

    second = repository.backup(target)

    backed_up = {entry["path"] for entry in repository.manifest(second.id).tree}
    assert backed_up.isdisjoint(left)
    assert backed_up >= {*LOOK_ALIKES, ".folder.restore-0a1b2c3d/inside.txt"}


def test_a_restore_removes_the_temps_a_killed_restore_left_and_keeps_look_alikes(tmp_path):
    store = LocalStore(tmp_path / "repository", fsync=False)
    repository = Repository.init(store, SECRET, **REPOSITORY_OPTIONS)
    source = big_workspace(tmp_path / "workspace")
    info = repository.backup(source)
    target = tmp_path / "target"
    killed = start_restore(store.root, info.id, target, "kill")
    killed.communicate(timeout=120)
    assert restore_temps(target)

    repository.restore(info.id, target)

    assert restore_temps(target) == []
    assert tree_digest(target) == tree_digest(source)


def test_a_restore_leaves_the_temps_of_another_restore_running_into_the_same_target(tmp_path):
    store = LocalStore(tmp_path / "repository", fsync=False)
    repository = Repository.init(store, SECRET, **REPOSITORY_OPTIONS)
    source = big_workspace(tmp_path / "workspace")
    info = repository.backup(source)
    target = tmp_path / "target"
    running = start_restore(store.root, info.id, target, "pause")
    assert running.stdout.readline() == "paused\n"
    assert restore_temps(target)

    repository.restore(info.id, target)
    output, errors = running.communicate("go on\n", timeout=120)

    assert running.returncode == 0, errors
    assert output.strip() == str(info.summary["files"])
    assert restore_temps(target) == []
    assert tree_digest(target) == tree_digest(source)


def test_a_file_with_a_255_byte_name_restores(repository, tmp_path):
    source = tmp_path / "workspace"
    source.mkdir()
    long_name = "é" * 100 + "x" * 55  # 255 bytes in UTF-8, the longest name Linux allows
    (source / long_name).write_text("long\n")
    (source / ("l" * 255)).symlink_to(long_name)
    info = repository.backup(source)

    repository.restore(info.id, tmp_path / "restored")

    assert tree_digest(tmp_path / "restored") == tree_digest(source)


# --- damaged data ------------------------------------------------------------------------------


def backed_up(tmp_path: Path) -> tuple[LocalStore, str]:
    store = LocalStore(tmp_path / "repository", fsync=False)
    repository = Repository.init(store, SECRET, **REPOSITORY_OPTIONS)
    info = repository.backup(make_workspace(tmp_path / "workspace"))
    return store, info.id


def last_chunk_of(
    store: LocalStore, snapshot_id: str, path: str
) -> tuple[Path, formats.IndexEntry]:
    """The pack holding the last chunk of `path`, and where that chunk lies in it."""
    repository = Repository.open(store, SECRET)
    entry = next(e for e in repository.manifest(snapshot_id).tree if e["path"] == path)
    chunk = repository.index[bytes.fromhex(entry["chunks"][-1])]
    return store.root / formats.pack_key(chunk.pack_id), chunk


def flip_a_byte(path: Path, at: int | None = None) -> None:
    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 2 if at is None else at] ^= 0x01
    path.write_bytes(bytes(damaged))


@pytest.mark.parametrize(
    "damage",
    [
        lambda pack, chunk: flip_a_byte(pack, chunk.offset + chunk.length // 2),
        lambda pack, chunk: pack.write_bytes(pack.read_bytes()[: chunk.offset + 10]),
        lambda pack, chunk: pack.unlink(),
    ],
    ids=["flipped byte", "truncated", "missing"],
)
def test_a_damaged_pack_raises_damaged_data_with_no_temp_and_no_partial_file(tmp_path, damage):
    store, snapshot_id = backed_up(tmp_path)
    pack, chunk = last_chunk_of(store, snapshot_id, "checkpoints/model.bin")
    damage(pack, chunk)
    target = tmp_path / "restored"

    with pytest.raises(DamagedData) as raised:
        Repository.open(store, SECRET).restore(snapshot_id, target)

    assert raised.value.damaged_packs == [pack.name]
    assert "checkpoints/model.bin" in raised.value.affected_paths
    assert not any((target / path).exists() for path in raised.value.affected_paths)
    assert restore_temps(target) == []
    assert (target / "run.sh").read_text() == "#!/bin/sh\necho hi\n"


def test_a_damaged_pack_keeps_the_previous_version_at_the_final_path(tmp_path):
    store, snapshot_id = backed_up(tmp_path)
    pack, chunk = last_chunk_of(store, snapshot_id, "checkpoints/model.bin")
    flip_a_byte(pack, chunk.offset + chunk.length // 2)
    target = tmp_path / "restored"
    (target / "checkpoints").mkdir(parents=True)
    (target / "checkpoints" / "model.bin").write_text("yesterday's model\n")

    with pytest.raises(DamagedData):
        Repository.open(store, SECRET).restore(snapshot_id, target)

    assert (target / "checkpoints" / "model.bin").read_text() == "yesterday's model\n"
    assert restore_temps(target) == []


def test_a_store_failing_mid_restore_leaves_no_temp_file(tmp_path):
    store, snapshot_id = backed_up(tmp_path)
    pack, _chunk = last_chunk_of(store, snapshot_id, "checkpoints/model.bin")
    pack.unlink()
    pack.mkdir()  # reading it is an OSError, as an I/O error of the store would be
    target = tmp_path / "restored"

    with pytest.raises(OSError):
        Repository.open(store, SECRET).restore(snapshot_id, target)

    assert restore_temps(target) == []
    assert not (target / "checkpoints" / "model.bin").exists()


@pytest.mark.parametrize(
    "damage",
    [flip_a_byte, lambda index: index.write_bytes(b"")],
    ids=["flipped byte", "emptied"],
)
def test_a_damaged_index_object_is_a_one_line_error_naming_it(tmp_path, damage):
    store, snapshot_id = backed_up(tmp_path)
    index_object = next((store.root / "index").iterdir())
    damage(index_object)

    with pytest.raises(DamagedData, match=rf"index index/{index_object.name} is damaged"):
        Repository.open(store, SECRET).restore(snapshot_id, tmp_path / "restored")

    assert not (tmp_path / "restored").exists()


def test_a_missing_index_object_raises_damaged_data_for_the_files_it_held(tmp_path):
    store, snapshot_id = backed_up(tmp_path)
    pack, _chunk = last_chunk_of(store, snapshot_id, "checkpoints/model.bin")
    (store.root / formats.index_key(pack.name)).unlink()
    target = tmp_path / "restored"

    with pytest.raises(DamagedData, match="is not in the index") as raised:
        Repository.open(store, SECRET).restore(snapshot_id, target)

    assert "checkpoints/model.bin" in raised.value.affected_paths
    assert not (target / "checkpoints" / "model.bin").exists()
    assert restore_temps(target) == []


@pytest.mark.parametrize(
    "damage",
    [flip_a_byte, lambda manifest: manifest.write_bytes(b"")],
    ids=["flipped byte", "emptied"],
)
def test_a_damaged_manifest_is_a_one_line_error_naming_the_snapshot(tmp_path, damage):
    store, snapshot_id = backed_up(tmp_path)
    damage(store.root / formats.snapshot_key(snapshot_id))

    with pytest.raises(DamagedData, match=f"snapshot {snapshot_id} manifest is damaged"):
        Repository.open(store, SECRET).restore(snapshot_id, tmp_path / "restored")

    assert not (tmp_path / "restored").exists()
