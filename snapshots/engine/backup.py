"""Backup: scan the tree, chunk changed files, dedup, compress + encrypt, pack and upload.

Three stages overlap. The calling thread reads files and cuts chunks (FastCDC, C code that
holds the GIL; in a file that changed since the parent snapshot, the parent's cut points are
taken where the hashes of the bytes read prove them, see chunking.py). A pool of
`repository.workers` threads computes the chunk id and, for chunks the repository does not
have yet, compresses and seals them (BLAKE3 and lz4 release the GIL; AES-GCM does not, at
~1.3 GB/s). Full packs go to a pool of `repository.transfer_workers` upload threads, each
putting the pack and then its index fragment. Threads beat processes here
(`bench/snapshot.py --compare-pools`: 2 threads 954 MB/s, 2 processes 383 MB/s for hash +
compress + seal): a process pool pickles every chunk through a pipe, which costs more than
the GIL contention it avoids.
"""

import collections
import ctypes
import datetime as dt
import os
import re
import secrets
import socket
import stat
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from snapshots.engine import formats
from snapshots.engine.chunking import PreviousLayout, cut_points
from snapshots.engine.exceptions import EngineError, SnapshotNotFound
from snapshots.engine.formats import IndexEntry, Manifest, SnapshotInfo
from snapshots.engine.repository import ProgressCallback, ProgressMeter, Repository, utc_now

_GC_WAIT_POLL_SECONDS = 0.5
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
_READ_AHEAD_THREADS = 4
_READ_AHEAD_FILES = 64
_READ_AHEAD_MAX_BYTES = 1024 * 1024
_CARRY = object()  # a previous chunk may start here, but the block ends before its end
# What restore.py writes a file or symlink to before renaming it into place. A killed restore
# leaves these behind; they are never workspace content (a user's `x.restore-notes` is).
RESTORE_TEMP_NAME = re.compile(r"\..+\.restore-[0-9a-f]{8}", re.DOTALL)


def scan_tree(root: Path) -> list[dict[str, Any]]:
    """Every directory, file and symlink under `root` (itself as "."), sorted by path."""
    root_stat = os.lstat(root)
    if not stat.S_ISDIR(root_stat.st_mode):
        raise EngineError(f"{root}: not a directory")
    entries = [
        {
            "path": ".",
            "type": "dir",
            "mode": stat.S_IMODE(root_stat.st_mode),
            "mtime_ns": root_stat.st_mtime_ns,
        }
    ]
    pending = [(root, "")]
    while pending:
        directory, relative = pending.pop()
        try:
            children = list(os.scandir(directory))
        except OSError as error:
            raise EngineError(f"{directory}: {error.strerror}") from None
        for child in children:
            path = f"{relative}{child.name}"
            try:
                info = child.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed while we scanned
            if RESTORE_TEMP_NAME.fullmatch(child.name) and not stat.S_ISDIR(info.st_mode):
                continue  # left by a killed restore (the next restore here removes it)
            entry = {"path": path, "mode": stat.S_IMODE(info.st_mode), "mtime_ns": info.st_mtime_ns}
            if stat.S_ISDIR(info.st_mode):
                entry["type"] = "dir"
                pending.append((Path(child.path), path + "/"))
            elif stat.S_ISREG(info.st_mode):
                entry.update(type="file", size=info.st_size, inode=info.st_ino)
            elif stat.S_ISLNK(info.st_mode):
                entry.update(type="symlink", target=os.readlink(child.path))
            else:
                continue  # sockets, fifos and devices are not workspace data
            entries.append(entry)
    entries.sort(key=lambda entry: entry["path"])
    return entries


class ChunkPipeline:
    """Feeds chunks to the worker pool in order and packs and uploads the new ones."""

    def __init__(self, repository: Repository, meter: ProgressMeter):
        self.repository = repository
        self.keys = repository.keys
        self.index = repository.index
        self.meter = meter
        average = repository.average_chunk_bytes
        self.min_chunk = max(64, average // 4)
        self.max_chunk = max(1024, average * 4)
        self.segment_bytes = max(16 * 1024 * 1024, 2 * self.max_chunk)
        self.workers = ThreadPoolExecutor(repository.workers, thread_name_prefix="chunk")
        self.uploads = ThreadPoolExecutor(repository.transfer_workers, thread_name_prefix="upload")
        self.reader = ThreadPoolExecutor(1, thread_name_prefix="read-block")
        self.inflight: collections.deque = collections.deque()
        # Chunks queued for the workers, in bytes: enough to keep them busy while this thread
        # cuts the next segment (one FastCDC call on 16 MiB holds the GIL for ~7 ms).
        self.inflight_bytes = 0
        self.max_inflight_bytes = 2 * self.segment_bytes
        self.upload_futures: list[Future] = []
        self.claimed: set[bytes] = set()
        self.claim_lock = threading.Lock()
        self.new_entries: dict[bytes, IndexEntry] = {}
        self.pack_parts: list[bytes] = []
        self.pack_records: list[tuple[bytes, IndexEntry]] = []
        self.pack_size = 0
        self.pack_id = secrets.token_hex(16)
        self.uploaded_bytes = 0
        self.chunks_new = 0
        self.chunks_total = 0

    def _cut(self, data: bytes | bytearray | memoryview):
        return cut_points(data, self.min_chunk, self.repository.average_chunk_bytes, self.max_chunk)

    def add_data(self, entry: dict[str, Any], data: bytes) -> None:
        """Chunk a file read whole (small files, read ahead by a reader thread)."""
        entry["chunks"] = chunks = []
        if data:
            view = memoryview(data)
            for cut in self._cut(data):
                chunks.append(None)
                self._submit(view[cut.offset : cut.offset + cut.length], chunks, len(chunks) - 1)
        entry["size"] = len(data)
        self.meter.add(bytes_done=len(data))

    def add_file(
        self, source: Path, entry: dict[str, Any], previous: PreviousLayout | None = None
    ) -> None:
        """Read and chunk one file; its chunk ids fill in as the workers finish. `previous`
        (the file's chunks in the parent snapshot) lets unchanged ranges skip FastCDC."""
        entry["chunks"] = chunks = []
        size = 0
        # Blocks start every `segment_bytes` and run `max_chunk` bytes into the next one:
        # whatever a block leaves over (a chunk its end may have cut short, or a previous
        # chunk that does not fit) is shorter than a chunk, so the next block holds it whole.
        # Fixed offsets let a thread read the next block while this one is hashed; pread
        # returns fresh bytes (a bytearray to read into is zero-filled first, which cost more
        # than re-reading the overlap), and a short read is the end of the file.
        stride = self.segment_bytes
        block_bytes = stride + self.max_chunk
        with open(source, "rb", buffering=0) as handle:
            descriptor = handle.fileno()
            number = 0
            ahead = self.reader.submit(os.pread, descriptor, block_bytes, 0)
            try:
                while True:
                    data = ahead.result()
                    at_end = len(data) < block_bytes
                    if not at_end:
                        following = (number + 1) * stride
                        ahead = self.reader.submit(os.pread, descriptor, block_bytes, following)
                    start = size - number * stride
                    if start < 0:  # a left-over longer than max_chunk: cannot happen
                        raise EngineError(f"{source}: chunking fell behind its blocks")
                    view = memoryview(data)[start:]
                    done = self._chunk_block(view, size, at_end, chunks, previous)
                    size += done
                    self.meter.add(bytes_done=done)
                    if at_end:
                        break
                    number += 1
            finally:
                wait([ahead])  # never close the file under a read in flight
        entry["size"] = size

    def _chunk_block(
        self,
        view: memoryview,
        base: int,
        at_end: bool,
        chunks: list,
        previous: PreviousLayout | None,
    ) -> int:
        """Queue the chunks of `view` (which starts at file offset `base`, a chunk boundary)
        and return how many bytes they cover; unless the file ends here, the rest (a chunk the
        block's end may have cut short) is left for the next block. See chunking.py."""
        cursor = 0
        fresh = None  # FastCDC's chunks from `fresh_start`, while no previous chunk fits
        fresh_start = 0
        checks: dict[tuple[int, int], tuple[Future, int]] = {}
        while cursor < len(view):
            if fresh is None and previous is not None:
                found = self._previous_chunk_at(view, cursor, base, at_end, previous, checks)
                if found is _CARRY:
                    return cursor
                if found is not None:
                    chunk_id, length = found
                    self._add_known(chunk_id, view[cursor : cursor + length], chunks)
                    cursor += length
                    continue
            if fresh is None:
                fresh, fresh_start = iter(self._cut(view[cursor:])), cursor
            cut = next(fresh)
            end = fresh_start + cut.offset + cut.length
            if end == len(view) and not at_end:
                return cursor  # the block's end, not the content, may have cut this one
            chunks.append(None)
            self._submit(view[cursor:end], chunks, len(chunks) - 1)
            cursor = end
            if previous is not None and previous.candidates(base + cursor):
                fresh = None
        return cursor

    def _previous_chunk_at(
        self,
        view: memoryview,
        cursor: int,
        base: int,
        at_end: bool,
        previous: PreviousLayout,
        checks: dict[tuple[int, int], tuple[Future, int]],
    ) -> tuple[bytes, int] | object | None:
        """(id, length) of a previous chunk whose content starts at `cursor`; _CARRY when one
        may but the block ends first; None when none does."""
        for position in previous.candidates(base + cursor):
            chunk_id, length = previous.chunks[position]
            end = cursor + length
            if end > len(view):
                if not at_end:
                    return _CARRY
                continue
            if previous.is_last(position) and not (at_end and end == len(view)):
                continue
            if (cursor, position) not in checks:
                self._check_ahead(view, cursor, position, previous, checks)
            future, number = checks[cursor, position]
            if future.result()[number] == chunk_id:
                return chunk_id, length
        return None

    def _check_ahead(
        self,
        view: memoryview,
        cursor: int,
        position: int,
        previous: PreviousLayout,
        checks: dict[tuple[int, int], tuple[Future, int]],
    ) -> None:
        # Hash the previous chunks that would follow, as far as the block goes, at once: while
        # they match, the walk only collects results. One job per worker thread, each a run of
        # chunks (a future per chunk cost more than hashing a 256 KiB chunk).
        run = []
        offset = cursor
        for following in range(position, len(previous.chunks)):
            length = previous.chunks[following][1]
            if offset + length > len(view):
                break
            if (offset, following) not in checks:
                run.append((offset, following, length))
            offset += length
        share = max(1, -(-len(run) // self.repository.workers))
        for start in range(0, len(run), share):
            batch = run[start : start + share]
            pieces = [view[offset : offset + length] for offset, _, length in batch]
            future = self.workers.submit(self._chunk_ids, pieces)
            for number, (offset, following, _) in enumerate(batch):
                checks[offset, following] = (future, number)

    def _chunk_ids(self, pieces: list[memoryview]) -> list[bytes]:
        return [self.keys.chunk_id(piece) for piece in pieces]

    def _add_known(self, chunk_id: bytes, piece: memoryview, chunks: list) -> None:
        if chunk_id in self.index:
            chunks.append(chunk_id.hex())
            self.chunks_total += 1
        else:  # pruned since the parent snapshot: store it again
            chunks.append(None)
            self._submit(piece, chunks, len(chunks) - 1)

    def _submit(self, piece: memoryview, chunks: list, position: int) -> None:
        future = self.workers.submit(self._seal, piece)
        self.inflight.append((future, chunks, position, len(piece)))
        self.inflight_bytes += len(piece)
        while self.inflight_bytes > self.max_inflight_bytes:
            self._collect_one()

    def _seal(self, piece: memoryview) -> tuple[bytes, bytes | None, int, int]:
        chunk_id = self.keys.chunk_id(piece)
        with self.claim_lock:
            if chunk_id in self.index or chunk_id in self.claimed:
                return chunk_id, None, len(piece), 0
            self.claimed.add(chunk_id)
        payload, compression = self.repository.compress(piece)
        sealed = self.keys.seal(payload, formats.chunk_associated_data(chunk_id, compression))
        return chunk_id, sealed, len(piece), compression

    def _collect_one(self) -> None:
        future, chunks, position, length = self.inflight.popleft()
        self.inflight_bytes -= length
        chunk_id, sealed, raw_length, compression = future.result()
        chunks[position] = chunk_id.hex()
        self.chunks_total += 1
        if sealed is None:
            return
        self.chunks_new += 1
        entry = IndexEntry(self.pack_id, self.pack_size, len(sealed), raw_length, compression)
        self.pack_parts.append(sealed)
        self.pack_records.append((chunk_id, entry))
        self.pack_size += len(sealed)
        if self.pack_size >= self.repository.pack_bytes:
            self._flush_pack()

    def _flush_pack(self) -> None:
        if not self.pack_parts:
            return
        pack_id, parts, records = self.pack_id, self.pack_parts, self.pack_records
        self.pack_id = secrets.token_hex(16)
        self.pack_parts, self.pack_records, self.pack_size = [], [], 0
        # Bound memory: at most two packs per upload thread wait in the queue.
        pending = [future for future in self.upload_futures if not future.done()]
        while len(pending) >= 2 * self.repository.transfer_workers:
            pending[0].result()
            pending = [future for future in pending if not future.done()]
        self.upload_futures.append(self.uploads.submit(self._upload, pack_id, parts, records))

    def _upload(self, pack_id: str, parts: list[bytes], records: list) -> int:
        store = self.repository.store
        store.put(formats.pack_key(pack_id), parts)
        # The fragment goes after its pack: a fragment never names a pack that is not there.
        index_blob = self.keys.seal(
            formats.encode_index(records), formats.index_associated_data(pack_id)
        )
        store.put(formats.index_key(pack_id), index_blob)
        self.repository.remember_index_object(formats.index_key(pack_id), records)
        return sum(map(len, parts)) + len(index_blob)

    def finish(self) -> None:
        while self.inflight:
            self._collect_one()
        self._flush_pack()
        for future in self.upload_futures:
            self.uploaded_bytes += future.result()
        self.workers.shutdown()
        self.uploads.shutdown()
        self.reader.shutdown()

    def abort(self) -> None:
        self.workers.shutdown(wait=True, cancel_futures=True)
        self.uploads.shutdown(wait=True, cancel_futures=True)
        self.reader.shutdown(wait=True, cancel_futures=True)


def _read_ahead(
    root: Path, entries: list[dict[str, Any]]
) -> Iterator[tuple[dict, bytes | FileNotFoundError | None]]:
    """Yield (entry, contents or the error) in order; small files are read by threads ahead of
    the chunker
    (opening many small files one after another is file-system latency). Large files
    yield None and are streamed by the caller."""

    def read(entry: dict[str, Any]) -> bytes | FileNotFoundError:
        try:
            return (root / entry["path"]).read_bytes()
        except FileNotFoundError as error:
            return error

    window: collections.deque = collections.deque()
    pending = iter(entries)
    with ThreadPoolExecutor(_READ_AHEAD_THREADS, thread_name_prefix="read") as readers:
        while True:
            while len(window) < _READ_AHEAD_FILES:
                entry = next(pending, None)
                if entry is None:
                    break
                small = entry["size"] <= _READ_AHEAD_MAX_BYTES
                window.append((entry, readers.submit(read, entry) if small else None))
            if not window:
                return
            entry, future = window.popleft()
            yield entry, future.result() if future is not None else None


def _wait_for_garbage_collection(repository: Repository) -> None:
    # Our lease is already written, so a collector that starts from now on sees it and defers.
    # One that started before us may be deleting packs: load the index only after it is done.
    while repository.active_leases("gc"):
        time.sleep(_GC_WAIT_POLL_SECONDS)


def _parent_tree(
    repository: Repository, parent: str | None, source: str
) -> tuple[str | None, dict]:
    if parent is None:
        return None, {}
    if parent == "latest":
        same_source = [info for info in repository.snapshots() if info.source == source]
        if not same_source:
            return None, {}
        parent = same_source[-1].id
    try:
        manifest = repository.manifest(parent)
    except SnapshotNotFound:
        raise EngineError(f"parent snapshot {parent} not found") from None
    return manifest.info.id, {entry["path"]: entry for entry in manifest.tree}


def tune_allocator() -> None:
    """Keep freed buffers in the process instead of unmapping them (glibc only, else no-op).

    Every chunk allocates a few 64 KiB-1 MiB buffers (read, compress, encrypt); above glibc's
    mmap threshold each is a fresh mmap whose pages fault in again. The same settings through
    glibc's MALLOC_* variables halved the system time of a first backup (2.2 s -> 1.1 s per GiB).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)  # glibc's maximum
        libc.mallopt(_M_TRIM_THRESHOLD, 256 * 1024 * 1024)
    except (OSError, AttributeError):
        pass


def run_backup(
    repository: Repository,
    root: Path,
    *,
    parent: str | None,
    progress: ProgressCallback | None,
    tags: list[str],
    snapshot_time: dt.datetime | None,
) -> SnapshotInfo:
    """Back up `root`; the manifest is written last, so a crash leaves no partial snapshot."""
    started = time.monotonic()
    tune_allocator()
    root = root.resolve()
    source = str(root)
    lease = repository.acquire_lease("backup")
    try:
        lease.keep_alive()
        _wait_for_garbage_collection(repository)
        repository.refresh()
        parent_id, parent_tree = _parent_tree(repository, parent, source)
        tree = scan_tree(root)
        index = repository.index
        to_read = []
        previous_chunks: dict[str, list[str]] = {}  # of large files that changed
        for entry in tree:
            if entry["type"] != "file":
                continue
            previous = parent_tree.get(entry["path"])
            if (
                previous is not None
                and previous["type"] == "file"
                and previous["size"] == entry["size"]
                and previous["mtime_ns"] == entry["mtime_ns"]
                and previous["inode"] == entry["inode"]
                and all(bytes.fromhex(chunk) in index for chunk in previous["chunks"])
            ):
                entry["chunks"] = previous["chunks"]
            else:
                to_read.append(entry)
                if (
                    previous is not None
                    and previous["type"] == "file"
                    and entry["size"] > _READ_AHEAD_MAX_BYTES
                ):
                    previous_chunks[entry["path"]] = previous["chunks"]
        meter = ProgressMeter(
            "backup", progress, sum(entry["size"] for entry in to_read), len(to_read)
        )
        pipeline = ChunkPipeline(repository, meter)
        vanished = set()
        try:
            for entry, data in _read_ahead(root, to_read):
                try:
                    if isinstance(data, FileNotFoundError):
                        raise data
                    if data is None:
                        layout = None
                        if entry["path"] in previous_chunks:
                            layout = PreviousLayout.of(
                                previous_chunks[entry["path"]],
                                index,
                                entry["size"],
                                pipeline.max_chunk,
                            )
                        pipeline.add_file(root / entry["path"], entry, layout)
                    else:
                        pipeline.add_data(entry, data)
                except FileNotFoundError:
                    vanished.add(entry["path"])  # deleted between the scan and the read
                meter.add(files_done=1)
            pipeline.finish()
        except BaseException:
            pipeline.abort()
            raise
        meter.bytes_done = meter.bytes_total
        meter.finish()
        tree = [entry for entry in tree if entry["path"] not in vanished]
        files = [entry for entry in tree if entry["type"] == "file"]
        info = SnapshotInfo(
            id=secrets.token_hex(16),
            time=(snapshot_time or utc_now()).astimezone(dt.UTC).isoformat(),
            source=source,
            hostname=socket.gethostname(),
            parent=parent_id,
            tags=tags,
        )
        info.summary = {
            "files": len(files),
            "dirs": sum(1 for entry in tree if entry["type"] == "dir"),
            "symlinks": sum(1 for entry in tree if entry["type"] == "symlink"),
            "bytes": sum(entry["size"] for entry in files),
            "files_read": len(to_read) - len(vanished),
            "bytes_read": sum(entry["size"] for entry in to_read if entry["path"] not in vanished),
            "chunks_total": pipeline.chunks_total,
            "chunks_new": pipeline.chunks_new,
            "uploaded_bytes": pipeline.uploaded_bytes,
        }
        manifest = Manifest(info, tree)
        info.summary["duration_seconds"] = round(time.monotonic() - started, 3)
        # added_bytes = packs + index fragments + this manifest. The manifest cannot hold its
        # own size (compressed, it changes with the number), so it is added once written: the
        # stored summary has uploaded_bytes, the returned one both.
        written = repository.write_manifest(manifest)
        info.summary["added_bytes"] = pipeline.uploaded_bytes + written
        repository.refresh()
        return info
    finally:
        lease.release()
