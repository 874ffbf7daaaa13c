"""Restore: plan the files, fetch the packs in parallel, check every chunk, write, rename.

Each file is written to a temp name next to its final path (`.<name>.restore-<8 hex>`,
backup.RESTORE_TEMP_NAME) and renamed into place only when all of its chunks passed their checks
(GCM tag, then the chunk id recomputed from the plaintext), so a damaged chunk never leaves a
half-written file at the final path. A restore that fails removes its temps; one that was killed
leaves them, so the next restore into the same target removes them first, and backups skip them.
Directory modes and mtimes are set last, deepest first, because writing into a directory changes
its mtime.
"""

import contextlib
import fcntl
import os
import secrets
import threading
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snapshots.engine import formats
from snapshots.engine.backup import RESTORE_TEMP_NAME, tune_allocator
from snapshots.engine.crypto import BlobAuthenticationError
from snapshots.engine.exceptions import DamagedData, EngineError, ObjectNotFound
from snapshots.engine.formats import IndexEntry
from snapshots.engine.repository import ProgressCallback, ProgressMeter, Repository

# Ranges of one pack closer than this are fetched with one request, up to a request's maximum:
# buffers under glibc's (raised) mmap threshold are reused instead of faulted in afresh.
_COALESCE_GAP_BYTES = 1024 * 1024
_REQUEST_MAX_BYTES = 8 * 1024 * 1024
# Temp files one pack worker keeps open (8 workers: 128 descriptors, well under the usual
# `ulimit -n` of 1024 however many files a pack holds; a Python environment has tens of
# thousands). A file is closed after its last chunk in the pack, so the limit is rarely reached.
_OPEN_FILES_PER_WORKER = 16
_NAME_MAX_BYTES = 255


@dataclass
class RestoreResult:
    snapshot_id: str
    files: int = 0
    bytes: int = 0
    dirs: int = 0
    symlinks: int = 0
    downloaded_bytes: int = 0
    failed_paths: list[str] = field(default_factory=list)


def select_entries(tree: list[dict[str, Any]], paths: list[str] | None) -> list[dict[str, Any]]:
    """The entries at or under each of `paths` (relative to the snapshot root)."""
    if not paths:
        return tree
    wanted = [path.strip("/") for path in paths]
    selected = [
        entry
        for entry in tree
        if any(entry["path"] == path or entry["path"].startswith(path + "/") for path in wanted)
    ]
    found = {entry["path"] for entry in selected}
    missing = [path for path in wanted if path not in found]
    if missing:
        raise EngineError(f"not in the snapshot: {', '.join(missing)}")
    return selected


def _check_inside(target: Path, path: str) -> Path:
    final = target / path if path != "." else target
    if ".." in Path(path).parts or Path(path).is_absolute():
        raise EngineError(f"refusing to restore outside the target: {path!r}")
    return final


def _temp_path(final: Path) -> Path:
    """`.<name>.restore-<8 hex>` beside `final`, the name cut to fit the file system's 255 bytes."""
    suffix = f".restore-{secrets.token_hex(4)}"
    name = os.fsencode(final.name)[: _NAME_MAX_BYTES - 1 - len(suffix)]
    return final.with_name("." + os.fsdecode(name) + suffix)


def remove_stale_temps(target: Path) -> int:
    """Remove the temps of restores killed while writing under `target`; returns how many."""
    removed = 0
    pending = [target]
    while pending:
        try:
            children = list(os.scandir(pending.pop()))
        except OSError:
            continue  # unreadable or just removed: nothing of ours can be in it
        for child in children:
            if child.is_dir(follow_symlinks=False):
                pending.append(child.path)
            elif RESTORE_TEMP_NAME.fullmatch(child.name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(child.path)
                    removed += 1
    return removed


@contextlib.contextmanager
def _claimed(target: Path) -> Iterator[None]:
    """Hold a shared lock on `target` while restoring into it, after removing stale temps if
    no other restore holds one: the temps of a restore still running are not stale."""
    descriptor = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # another restore is writing here: its temps stay, a later restore cleans
        else:
            remove_stale_temps(target)
        # Going from exclusive to shared unlocks for a moment: another restore may clean up
        # then, which is harmless, as this one has no temp yet.
        fcntl.flock(descriptor, fcntl.LOCK_SH)
        yield
    finally:
        os.close(descriptor)


class _OpenFiles:
    """The temp files one pack worker writes: each closed after its last chunk in the pack, and
    at most `limit` open (the least recently written is closed, and reopened if needed)."""

    def __init__(self, opener: Callable[[int], int], remaining: Counter, limit: int):
        self.opener = opener
        self.remaining = remaining  # number -> placements of this pack still to write
        self.limit = limit
        self.descriptors: OrderedDict[int, int] = OrderedDict()

    def write(self, number: int, data: bytes, offset: int) -> None:
        descriptor = self.descriptors.get(number)
        if descriptor is None:
            if len(self.descriptors) >= self.limit:
                os.close(self.descriptors.popitem(last=False)[1])
            descriptor = self.descriptors[number] = self.opener(number)
        else:
            self.descriptors.move_to_end(number)
        os.pwrite(descriptor, data, offset)

    def placed(self, number: int) -> None:
        """One placement of file `number` is done (written, or failed its checks)."""
        self.remaining[number] -= 1
        if self.remaining[number] == 0 and number in self.descriptors:
            os.close(self.descriptors.pop(number))

    def close(self) -> None:
        while self.descriptors:
            os.close(self.descriptors.popitem()[1])


def run_restore(
    repository: Repository,
    snapshot_id: str,
    target: Path,
    *,
    paths: list[str] | None,
    progress: ProgressCallback | None,
) -> RestoreResult:
    tune_allocator()
    manifest = repository.manifest(snapshot_id)
    entries = select_entries(manifest.tree, paths)
    index = repository.index  # a damaged index fails here, before the target is touched
    target.mkdir(parents=True, exist_ok=True)
    with _claimed(target):
        return _restore_into(repository, index, manifest.info.id, entries, target, progress)


def _restore_into(
    repository: Repository,
    index: dict[bytes, IndexEntry],
    snapshot_id: str,
    entries: list[dict[str, Any]],
    target: Path,
    progress: ProgressCallback | None,
) -> RestoreResult:
    result = RestoreResult(snapshot_id)
    dirs = [entry for entry in entries if entry["type"] == "dir"]
    files = [entry for entry in entries if entry["type"] == "file"]
    for entry in dirs:
        _check_inside(target, entry["path"]).mkdir(parents=True, exist_ok=True)
    for parent in {_check_inside(target, entry["path"]).parent for entry in files}:
        parent.mkdir(parents=True, exist_ok=True)

    # chunk id -> where it goes; pack -> the chunks it must deliver.
    placements: dict[bytes, list[tuple[int, int]]] = defaultdict(list)
    temp_paths: list[Path] = []
    missing_chunks: dict[int, str] = {}
    for number, entry in enumerate(files):
        temp_paths.append(_temp_path(_check_inside(target, entry["path"])))
        offset = 0
        for chunk in entry["chunks"]:
            chunk_id = bytes.fromhex(chunk)
            stored = index.get(chunk_id)
            if stored is None:
                missing_chunks[number] = f"chunk {chunk[:16]} is not in the index"
            else:
                placements[chunk_id].append((number, offset))
                offset += stored.raw_length

    # Pack workers create the temp files as they write into them (pwrite past the end extends
    # a file); renames are metadata round trips to the file system, run in parallel too.
    pool = ThreadPoolExecutor(repository.transfer_workers, thread_name_prefix="restore")
    by_pack: dict[str, list[bytes]] = defaultdict(list)
    for chunk_id in placements:
        by_pack[index[chunk_id].pack_id].append(chunk_id)

    meter = ProgressMeter("restore", progress, sum(entry["size"] for entry in files), len(files))
    failed: dict[int, str] = dict(missing_chunks)
    damaged_packs: set[str] = set()
    lock = threading.Lock()
    created: set[int] = set()
    created_lock = threading.Lock()

    def open_temp(number: int) -> int:
        # Only the first open creates the temp: one removed under us (a restore into an outer
        # folder cleaning up) then fails this restore instead of coming back with holes.
        with created_lock:
            flags = os.O_WRONLY
            if number not in created:
                flags |= os.O_CREAT | os.O_EXCL
                created.add(number)
            return os.open(temp_paths[number], flags, 0o600)

    def restore_pack(pack_id: str) -> int:
        remaining = Counter(
            number for chunk_id in by_pack[pack_id] for number, _offset in placements[chunk_id]
        )
        open_files = _OpenFiles(open_temp, remaining, _OPEN_FILES_PER_WORKER)
        try:
            return restore_pack_into(pack_id, open_files)
        finally:
            open_files.close()

    def restore_pack_into(pack_id: str, open_files: _OpenFiles) -> int:
        chunk_ids = sorted(by_pack[pack_id], key=lambda chunk_id: index[chunk_id].offset)
        downloaded = 0
        ranges: list[list[bytes]] = []
        for chunk_id in chunk_ids:
            entry = index[chunk_id]
            if ranges:
                last = index[ranges[-1][-1]]
                first = index[ranges[-1][0]]
                gap = entry.offset - (last.offset + last.length)
                size = entry.offset + entry.length - first.offset
                if gap <= _COALESCE_GAP_BYTES and size <= _REQUEST_MAX_BYTES:
                    ranges[-1].append(chunk_id)
                    continue
            ranges.append([chunk_id])
        for group in ranges:
            start = index[group[0]].offset
            end = index[group[-1]].offset + index[group[-1]].length
            try:
                data = repository.store.get_range(formats.pack_key(pack_id), start, end - start)
            except ObjectNotFound:
                data = b""
            downloaded += len(data)
            view = memoryview(data)
            for chunk_id in group:
                entry = index[chunk_id]
                blob = view[entry.offset - start : entry.offset - start + entry.length]
                try:
                    plain = repository.open_chunk(chunk_id, entry, blob)
                except BlobAuthenticationError as error:
                    with lock:
                        damaged_packs.add(pack_id)
                        for number, _offset in placements[chunk_id]:
                            failed[number] = f"pack {pack_id}: {error}"
                    plain = None
                for number, offset in placements[chunk_id]:
                    if plain is not None:
                        open_files.write(number, plain, offset)
                    open_files.placed(number)
                if plain is not None:
                    meter.add(bytes_done=len(plain) * len(placements[chunk_id]))
        return downloaded

    def finish_file(number: int) -> None:
        entry, temp = files[number], temp_paths[number]
        if number in failed:
            temp.unlink(missing_ok=True)
            return
        if entry["size"] == 0:
            os.close(open_temp(number))
        os.chmod(temp, entry["mode"])
        os.utime(temp, ns=(entry["mtime_ns"], entry["mtime_ns"]))
        os.replace(temp, _check_inside(target, entry["path"]))
        meter.add(files_done=1)

    try:
        with pool:
            try:
                result.downloaded_bytes = sum(pool.map(restore_pack, list(by_pack)))
                list(pool.map(finish_file, range(len(files))))
            except BaseException:
                pool.shutdown(cancel_futures=True)
                raise
    except BaseException:
        # A store or file-system error (not damaged data, which fails only its files): no temp
        # stays behind, and the files already renamed are whole.
        for temp in temp_paths:
            temp.unlink(missing_ok=True)
        raise
    for number, entry in enumerate(files):
        if number in failed:
            result.failed_paths.append(entry["path"])
        else:
            result.files += 1
            result.bytes += entry["size"]

    for entry in entries:
        if entry["type"] != "symlink":
            continue
        final = _check_inside(target, entry["path"])
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = _temp_path(final)
        os.symlink(entry["target"], temp)
        try:
            os.utime(temp, ns=(entry["mtime_ns"], entry["mtime_ns"]), follow_symlinks=False)
            os.replace(temp, final)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        result.symlinks += 1

    for entry in sorted(dirs, key=lambda entry: entry["path"].count("/"), reverse=True):
        final = _check_inside(target, entry["path"])
        os.chmod(final, entry["mode"])
        os.utime(final, ns=(entry["mtime_ns"], entry["mtime_ns"]))
        result.dirs += 1
    meter.finish()

    if failed:
        paths_failed = sorted(result.failed_paths)
        packs = sorted(damaged_packs)
        reason = f"damaged pack {', '.join(packs)}" if packs else next(iter(failed.values()))
        raise DamagedData(
            f"restore incomplete: {reason}; files not restored: {', '.join(paths_failed[:10])}"
            + (f" and {len(paths_failed) - 10} more" if len(paths_failed) > 10 else ""),
            packs,
            paths_failed,
        )
    return result
