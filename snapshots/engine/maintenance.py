"""Verify, prune (retention + garbage collection) and diff.

Garbage collection rule (why a backup running at the same time loses nothing):
  A backup dedups against every chunk in the index it loaded when it started, however old the
  pack holding it. So "delete unreferenced packs older than the oldest running backup" is not
  safe: that backup may be about to reference one of them. Instead:
  1. A backup writes its lease (`locks/backup-*`) first, then waits while any garbage
     collection lease (`locks/gc-*`) is active, and only then loads the index.
  2. Garbage collection writes its own lease first, then lists the leases. If any backup lease
     is active it deletes no data (it still forgets snapshots; reports `gc_deferred`).
  Both write before they look, so at least one of them sees the other: either the collector
  defers, or the backup waits and then loads the index as the collector left it.
  3. Only packs with no chunk referenced by any remaining snapshot and older than
     `grace_seconds` are deleted (the grace covers a backup whose clock or lease misbehaves).
     The index is rewritten first (one combined index without them), then the packs go: a
     crash in between leaves orphan packs, never an index entry that points nowhere. Packs
     that are partly referenced stay whole (TODO(#5): repack them).
  A lease not refreshed for `lease_timeout_seconds` is a dead process's and is ignored.
"""

import datetime as dt
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from snapshots.engine import formats
from snapshots.engine.crypto import BlobAuthenticationError
from snapshots.engine.exceptions import EngineError, ObjectNotFound
from snapshots.engine.formats import SnapshotInfo
from snapshots.engine.repository import Repository, utc_now


@dataclass
class VerifyReport:
    errors: list[str] = field(default_factory=list)
    damaged_packs: list[str] = field(default_factory=list)
    affected_paths: list[str] = field(default_factory=list)  # "<snapshot id>:<path>"
    packs_checked: int = 0
    chunks_checked: int = 0

    @property
    def is_ok(self) -> bool:
        return not self.errors


def verify(repository: Repository, *, read_data: bool) -> VerifyReport:
    """Structural check always; with `read_data`, decrypt and re-hash every chunk."""
    report = VerifyReport()
    repository.invalidate()
    index = repository.index
    pack_sizes = {item.key.rsplit("/", 1)[1]: item.size for item in repository.store.list("data/")}
    chunks_by_pack: dict[str, list[bytes]] = defaultdict(list)
    for chunk_id, entry in index.items():
        chunks_by_pack[entry.pack_id].append(chunk_id)
    bad_chunks: set[bytes] = set()
    for pack_id, chunk_ids in sorted(chunks_by_pack.items()):
        size = pack_sizes.get(pack_id)
        if size is None:
            report.errors.append(f"pack {pack_id} is missing (its index fragment names it)")
            report.damaged_packs.append(pack_id)
            bad_chunks.update(chunk_ids)
            continue
        end = max(index[chunk_id].offset + index[chunk_id].length for chunk_id in chunk_ids)
        if end > size:
            report.errors.append(f"pack {pack_id} is truncated ({size} of {end} bytes)")
            report.damaged_packs.append(pack_id)
            bad_chunks.update(chunk_ids)

    if read_data:

        def check_pack(pack_id: str) -> list[bytes]:
            try:
                data = repository.store.get(formats.pack_key(pack_id))
            except ObjectNotFound:
                return chunks_by_pack[pack_id]
            view = memoryview(data)
            failed = []
            for chunk_id in chunks_by_pack[pack_id]:
                entry = index[chunk_id]
                try:
                    repository.open_chunk(
                        chunk_id, entry, view[entry.offset : entry.offset + entry.length]
                    )
                except BlobAuthenticationError:
                    failed.append(chunk_id)
            return failed

        checked = [pack_id for pack_id in chunks_by_pack if pack_id not in report.damaged_packs]
        with ThreadPoolExecutor(repository.transfer_workers) as pool:
            for pack_id, failed in zip(checked, pool.map(check_pack, checked), strict=True):
                report.packs_checked += 1
                report.chunks_checked += len(chunks_by_pack[pack_id])
                if failed:
                    report.errors.append(
                        f"pack {pack_id}: {len(failed)} chunk(s) fail authentication"
                    )
                    report.damaged_packs.append(pack_id)
                    bad_chunks.update(failed)

    for info in repository.snapshots():
        for entry in repository.manifest(info.id).tree:
            for chunk in entry.get("chunks", ()):
                chunk_id = bytes.fromhex(chunk)
                if chunk_id not in index:
                    report.errors.append(
                        f"snapshot {info.id[:12]}: {entry['path']}: chunk {chunk[:16]} missing"
                    )
                    report.affected_paths.append(f"{info.id}:{entry['path']}")
                    break
                if chunk_id in bad_chunks:
                    report.affected_paths.append(f"{info.id}:{entry['path']}")
                    break
    if report.affected_paths and report.damaged_packs:
        shown = ", ".join(report.affected_paths[:10])
        more = len(report.affected_paths) - 10
        report.errors.append(f"files affected: {shown}" + (f" and {more} more" if more > 0 else ""))
    return report


@dataclass(frozen=True)
class RetentionPolicy:
    """Keep the newest `keep_last`, and the newest snapshot of each of the last `keep_daily`
    days and `keep_weekly` ISO weeks that have snapshots (UTC). A snapshot kept by any rule
    stays."""

    keep_last: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0

    @property
    def is_empty(self) -> bool:
        return not (self.keep_last or self.keep_daily or self.keep_weekly)


def select_kept(snapshots: list[SnapshotInfo], policy: RetentionPolicy) -> set[str]:
    newest_first = sorted(snapshots, key=lambda info: info.time, reverse=True)
    kept = {info.id for info in newest_first[: policy.keep_last]}
    for count, bucket_of in (
        (policy.keep_daily, lambda moment: moment.date()),
        (policy.keep_weekly, lambda moment: moment.isocalendar()[:2]),
    ):
        seen = []
        for info in newest_first:
            if len(seen) >= count:
                break
            bucket = bucket_of(dt.datetime.fromisoformat(info.time).astimezone(dt.UTC))
            if bucket not in seen:
                seen.append(bucket)
                kept.add(info.id)
    return kept


@dataclass
class PruneResult:
    kept: list[str]
    forgotten: list[str]
    gc_deferred: bool = False  # a backup was running: no data deleted this time
    deleted_packs: int = 0
    deleted_bytes: int = 0
    unreferenced_packs_kept: int = 0  # younger than the grace period


def prune(
    repository: Repository,
    policy: RetentionPolicy,
    *,
    collect_garbage: bool,
    grace_seconds: float,
    now: dt.datetime | None,
) -> PruneResult:
    """Forget the snapshots the policy does not keep, then collect garbage (module docstring)."""
    if policy.is_empty:
        raise EngineError("refusing to prune with an empty policy: it would forget everything")
    repository.invalidate()
    snapshots = repository.snapshots()
    kept = select_kept(snapshots, policy)
    forgotten = [info.id for info in snapshots if info.id not in kept]
    for snapshot_id in forgotten:
        repository.store.delete(formats.snapshot_key(snapshot_id))
    result = PruneResult(sorted(kept), forgotten)
    if collect_garbage:
        collect(repository, result, grace_seconds, now or utc_now())
    repository.invalidate()
    return result


def collect(
    repository: Repository, result: PruneResult, grace_seconds: float, now: dt.datetime
) -> None:
    store = repository.store
    lease = repository.acquire_lease("gc")
    try:
        if repository.active_leases("backup"):
            result.gc_deferred = True
            return
        repository.invalidate()
        index = repository.index
        referenced: set[bytes] = set()
        for snapshot_id in repository.snapshot_ids():
            for entry in repository.manifest(snapshot_id).tree:
                referenced.update(bytes.fromhex(chunk) for chunk in entry.get("chunks", ()))
        live_packs = {index[chunk_id].pack_id for chunk_id in referenced if chunk_id in index}
        cutoff = now.timestamp() - grace_seconds
        packs = {item.key.rsplit("/", 1)[1]: item for item in store.list("data/")}
        index_objects = list(store.list("index/"))
        doomed = {}
        for pack_id, item in packs.items():
            if pack_id in live_packs:
                continue
            if item.modified_at > cutoff:
                result.unreferenced_packs_kept += 1
                continue
            doomed[pack_id] = item
        remaining = {
            chunk_id: entry
            for chunk_id, entry in index.items()
            if entry.pack_id in packs and entry.pack_id not in doomed
        }
        # One combined index replaces every index object, written before they go: a reader
        # listing in between sees entries twice, never none. Then the doomed packs go: a crash
        # before that leaves packs no index names, which the next collection deletes.
        if doomed or len(index_objects) > 1:
            new_key = repository.write_combined_index(remaining)
            for item in index_objects:
                if item.key != new_key:
                    store.delete(item.key)
        for item in doomed.values():
            store.delete(item.key)
            result.deleted_packs += 1
            result.deleted_bytes += item.size
        # Leases of dead processes only block future collections.
        stale_before = time.time() - repository.lease_timeout_seconds
        for item in store.list("locks/"):
            if item.modified_at < stale_before and item.key != lease.key:
                store.delete(item.key)
    finally:
        lease.release()


@dataclass
class SnapshotDiff:
    added: list[str]
    removed: list[str]
    changed: list[str]


def diff(repository: Repository, first: str, second: str) -> SnapshotDiff:
    """Paths added, removed and changed (type, content, target or mode) from first to second."""
    before = {entry["path"]: entry for entry in repository.manifest(first).tree}
    after = {entry["path"]: entry for entry in repository.manifest(second).tree}

    def content(entry: dict) -> tuple:
        return (entry["type"], entry.get("chunks"), entry.get("target"), entry["mode"])

    return SnapshotDiff(
        added=sorted(path for path in after if path not in before),
        removed=sorted(path for path in before if path not in after),
        changed=sorted(
            path
            for path in after
            if path in before
            and path != "."
            and after[path]["type"] != "dir"
            and content(before[path]) != content(after[path])
        ),
    )
