import hashlib
import os
from pathlib import Path

import blake3
import pytest

from snapshots.engine import EngineError, Repository, WrongKey
from snapshots.engine.tests.conftest import (
    REPOSITORY_OPTIONS,
    SECRET,
    tree_digest,
    write_random,
)


def test_backup_then_restore_is_byte_identical_on_a_local_store(repository, workspace, tmp_path):
    info = repository.backup(workspace)

    repository.restore(info.id, tmp_path / "restored")

    assert tree_digest(tmp_path / "restored") == tree_digest(workspace)
    assert info.summary["files"] == 26
    assert info.summary["symlinks"] == 2


def test_backup_then_restore_is_byte_identical_on_s3(s3_store, workspace, tmp_path):
    repository = Repository.init(s3_store, SECRET, **REPOSITORY_OPTIONS)
    info = repository.backup(workspace)

    reopened = Repository.open(s3_store, SECRET)
    reopened.restore(info.id, tmp_path / "restored")

    assert tree_digest(tmp_path / "restored") == tree_digest(workspace)
    assert any(item.key.startswith("data/") for item in s3_store.list(""))
    assert reopened.verify(read_data=True).is_ok


def test_a_second_backup_rereads_only_the_changed_file_and_uploads_only_its_new_chunks(
    repository, workspace
):
    first = repository.backup(workspace)
    stored_before = repository.stats().stored_bytes
    model = workspace / "checkpoints" / "model.bin"
    data = bytearray(model.read_bytes())
    data[300_000:306_000] = os.urandom(6_000)  # 1 % of the tree
    model.write_bytes(bytes(data))

    second = repository.backup(workspace)

    growth = repository.stats().stored_bytes - stored_before
    assert second.parent == first.id
    assert second.summary["files_read"] == 1
    assert second.summary["bytes_read"] == 600_000
    # The new chunks around the change (FastCDC: ~one 16 KiB chunk, at most a few) + manifest.
    assert second.summary["chunks_new"] <= 4
    assert 6_000 < growth < 6_000 + 4 * 64 * 1024
    assert second.added_bytes == growth


def test_equal_content_in_two_repositories_gets_different_chunk_ids(tmp_path, workspace):
    from snapshots.engine import LocalStore

    first = Repository.init(LocalStore(tmp_path / "one"), SECRET, **REPOSITORY_OPTIONS)
    second = Repository.init(LocalStore(tmp_path / "two"), SECRET, **REPOSITORY_OPTIONS)

    first.backup(workspace)
    second.backup(workspace)

    assert len(first.index) == len(second.index) > 10
    assert not set(first.index) & set(second.index)
    tree = {entry["path"]: entry for entry in first.manifest("latest").tree}
    chunk_id = bytes.fromhex(tree["checkpoints/model.bin"]["chunks"][0])
    piece = (workspace / "checkpoints" / "model.bin").read_bytes()[
        : first.index[chunk_id].raw_length
    ]
    assert chunk_id not in {hashlib.sha256(piece).digest(), blake3.blake3(piece).digest()}


def test_opening_with_a_wrong_secret_raises_wrong_key(local_store, repository):
    with pytest.raises(WrongKey, match="wrong master secret"):
        Repository.open(local_store, "not the secret")


def test_restoring_a_single_file_restores_only_that_file(repository, workspace, tmp_path):
    info = repository.backup(workspace)

    repository.restore(info.id, tmp_path / "one", paths=["ünïcødé 日本/naïve café.txt"])

    restored = [path for path in (tmp_path / "one").rglob("*") if path.is_file()]
    assert restored == [tmp_path / "one" / "ünïcødé 日本" / "naïve café.txt"]
    assert restored[0].read_text() == "crème brûlée\n"


def test_restoring_a_single_directory_restores_its_whole_subtree(repository, workspace, tmp_path):
    info = repository.backup(workspace)

    repository.restore(info.id, tmp_path / "one", paths=["data"])

    assert tree_digest(tmp_path / "one" / "data") == tree_digest(workspace / "data")
    assert sorted(path.name for path in (tmp_path / "one").iterdir()) == ["data"]


def test_restoring_a_path_not_in_the_snapshot_is_an_error(repository, workspace, tmp_path):
    info = repository.backup(workspace)

    with pytest.raises(EngineError, match="not in the snapshot: nope"):
        repository.restore(info.id, tmp_path / "one", paths=["nope"])


def test_restore_overwrites_changed_files_in_an_existing_target(repository, workspace, tmp_path):
    info = repository.backup(workspace)
    target = tmp_path / "restored"
    repository.restore(info.id, target)
    (target / "run.sh").write_text("tampered")

    repository.restore(info.id, target)

    assert tree_digest(target) == tree_digest(workspace)


def test_zstd_repository_round_trips_and_stores_compressible_data_smaller(tmp_path):
    from snapshots.engine import LocalStore

    store = LocalStore(tmp_path / "repository")
    repository = Repository.init(store, SECRET, compression="zstd", **REPOSITORY_OPTIONS)
    source = tmp_path / "text"
    source.mkdir()
    (source / "log.txt").write_text("the same line again\n" * 50_000)
    write_random(source / "random.bin", 100_000, seed=9)

    info = repository.backup(source)
    repository.restore(info.id, tmp_path / "restored")

    assert tree_digest(tmp_path / "restored") == tree_digest(source)
    assert repository.stats().pack_bytes < 1_000_000 / 4 + 100_000 + 10_000


def test_progress_reports_bytes_files_and_an_eta(repository, workspace):
    updates = []

    repository.backup(workspace, progress=updates.append)

    last = updates[-1]
    assert last.phase == "backup"
    assert (
        last.bytes_done
        == last.bytes_total
        == sum(
            path.stat().st_size
            for path in Path(workspace).rglob("*")
            if path.is_file() and not path.is_symlink()
        )
    )
    assert last.files_done == last.files_total == 26
    assert last.eta_seconds == 0


def _overwrite(data: bytearray) -> bytearray:
    data[1_500_000:1_540_000] = os.urandom(40_000)
    return data


def _insert(data: bytearray) -> bytearray:
    return data[:1_000_000] + os.urandom(5_000) + data[1_000_000:]


def _delete(data: bytearray) -> bytearray:
    return data[:2_000_000] + data[2_007_000:]


def _append(data: bytearray) -> bytearray:
    return data + os.urandom(50_000)


def _truncate(data: bytearray) -> bytearray:
    return data[:-30_000]


def _replace(data: bytearray) -> bytearray:
    return bytearray(os.urandom(len(data)))


@pytest.mark.parametrize("edit", [_overwrite, _insert, _delete, _append, _truncate, _replace])
def test_a_changed_large_file_is_chunked_exactly_as_a_full_pass_would_chunk_it(
    repository, tmp_path, edit
):
    # The incremental takes the parent's cut points where the content proves them and cuts
    # the rest: the chunks, and so what it stores, must be those of a backup without parent.
    source = tmp_path / "source"
    write_random(source / "big.bin", 3_000_000, seed=7)
    repository.backup(source)
    big = source / "big.bin"
    big.write_bytes(bytes(edit(bytearray(big.read_bytes()))))
    os.utime(big, ns=(1_000_000_000, 1_000_000_000))

    incremental = repository.backup(source)
    full = repository.backup(source, parent=None)

    def chunks_of(info):
        tree = {entry["path"]: entry for entry in repository.manifest(info.id).tree}
        return tree["big.bin"]["chunks"]

    assert incremental.summary["files_read"] == 1
    assert len(chunks_of(incremental)) > 100
    assert chunks_of(incremental) == chunks_of(full)
    assert full.summary["chunks_new"] == 0
    repository.restore(incremental.id, tmp_path / "restored")
    assert tree_digest(tmp_path / "restored") == tree_digest(source)


def test_a_repository_kept_open_lists_what_others_add_and_forget(
    repository, local_store, workspace
):
    """The agent keeps a repository open between syncs: after refresh() its listing must show
    another machine's new snapshots and drop the ones a prune forgot."""
    from snapshots.engine.maintenance import RetentionPolicy

    follower, writer = Repository.open(local_store, SECRET), repository
    first = writer.backup(workspace, tags=["sync"])
    assert [info.id for info in follower.snapshots()] == [first.id]

    (workspace / "new.txt").write_text("written on the GPU")
    second = writer.backup(workspace, tags=["sync"])
    follower.refresh()
    assert [info.id for info in follower.snapshots()] == [first.id, second.id]

    writer.prune(RetentionPolicy(keep_last=1), collect_garbage=False)
    follower.refresh()
    assert [info.id for info in follower.snapshots()] == [second.id]
    assert follower.manifest("latest").info.id == second.id
