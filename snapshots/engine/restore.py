"""Restore: plan the files, fetch the packs in parallel, check every chunk, write, rename.

Each file is written to a temp name next to its final path and renamed into place only when all
of its chunks passed their checks (GCM tag, then the chunk id recomputed from the plaintext),
so a damaged chunk never leaves a half-written file at the final path. Directory modes and
mtimes are set last, deepest first, because writing into a directory changes its mtime.
"""

import os
import secrets
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snapshots.engine import formats
from snapshots.engine.backup import tune_allocator
from snapshots.engine.crypto import BlobAuthenticationError
from snapshots.engine.exceptions import DamagedData, EngineError, ObjectNotFound
from snapshots.engine.repository import ProgressCallback, ProgressMeter, Repository

# Ranges of one pack closer than this are fetched with one request, up to a request's maximum:
# buffers under glibc's (raised) mmap threshold are reused instead of faulted in afresh.
_COALESCE_GAP_BYTES = 1024 * 1024
_REQUEST_MAX_BYTES = 8 * 1024 * 1024


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
    index = repository.index
    result = RestoreResult(manifest.info.id)
    target.mkdir(parents=True, exist_ok=True)

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
        final = _check_inside(target, entry["path"])
        temp_paths.append(final.with_name(f".{final.name}.restore-{secrets.token_hex(4)}"))
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

    def restore_pack(pack_id: str) -> int:
        descriptors: dict[int, int] = {}
        try:
            return restore_pack_into(pack_id, descriptors)
        finally:
            for descriptor in descriptors.values():
                os.close(descriptor)

    def restore_pack_into(pack_id: str, descriptors: dict[int, int]) -> int:
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
                    continue
                for number, offset in placements[chunk_id]:
                    descriptor = descriptors.get(number)
                    if descriptor is None:
                        descriptor = os.open(temp_paths[number], os.O_WRONLY | os.O_CREAT, 0o600)
                        descriptors[number] = descriptor
                    os.pwrite(descriptor, plain, offset)
                meter.add(bytes_done=len(plain) * len(placements[chunk_id]))
        return downloaded

    def finish_file(number: int) -> None:
        entry, temp = files[number], temp_paths[number]
        if number in failed:
            temp.unlink(missing_ok=True)
            return
        if entry["size"] == 0:
            temp.touch()
        os.chmod(temp, entry["mode"])
        os.utime(temp, ns=(entry["mtime_ns"], entry["mtime_ns"]))
        os.replace(temp, _check_inside(target, entry["path"]))
        meter.add(files_done=1)

    with pool:
        result.downloaded_bytes = sum(pool.map(restore_pack, list(by_pack)))
        list(pool.map(finish_file, range(len(files))))
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
        temp = final.with_name(f".{final.name}.restore-{secrets.token_hex(4)}")
        os.symlink(entry["target"], temp)
        os.utime(temp, ns=(entry["mtime_ns"], entry["mtime_ns"]), follow_symlinks=False)
        os.replace(temp, final)
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
