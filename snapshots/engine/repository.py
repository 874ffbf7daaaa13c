"""A repository: its config and keys, the chunk index, snapshots, leases, and the public API."""

import collections
import datetime as dt
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lz4.frame

from snapshots.engine import formats
from snapshots.engine.crypto import (
    BlobAuthenticationError,
    KdfParameters,
    Keys,
    unwrap_keys,
    wrap_keys,
)
from snapshots.engine.exceptions import (
    DamagedData,
    EngineError,
    ObjectNotFound,
    RepositoryExists,
    RepositoryNotFound,
    SnapshotNotFound,
    WrongKey,
)
from snapshots.engine.formats import IndexEntry, Manifest, SnapshotInfo
from snapshots.engine.store import Store

if TYPE_CHECKING:  # these modules import this one
    from snapshots.engine.maintenance import (
        PruneResult,
        RetentionPolicy,
        SnapshotDiff,
        VerifyReport,
    )
    from snapshots.engine.restore import RestoreResult

# Measured with `bench/snapshot.py --size-gib 1 --runs 3 --choose-chunk-size` (BENCHMARKS.md,
# "Snapshots engine"): after a ~1 % change (8.1 MiB rewritten), the second backup stored
# 10.8 MiB with 256 KiB chunks, 15.8 MiB with 1 MiB and 48.8 MiB with 4 MiB. First backups ran
# at 479, 499 and 421 MB/s and restores at 390, 388 and 342 MB/s: 256 KiB costs ~4 % of first
# backup speed for a third less stored per increment, and ~8,000 index entries per GiB (a few
# MB of RAM per 10 GiB), which we accept.
DEFAULT_AVERAGE_CHUNK_BYTES = 256 * 1024
DEFAULT_PACK_BYTES = 32 * 1024 * 1024
# Bytes of a chunk test-compressed before compressing all of it.
_PROBE_BYTES = 8 * 1024
# Manifests this process wrote that stay decoded in memory (a manifest of 5,000 files is a few
# MB of Python objects).
_RECENT_MANIFESTS = 2
# Lease timing: a backup refreshes its lease every `LEASE_REFRESH_SECONDS`; one not refreshed for
# `LEASE_TIMEOUT_SECONDS` belongs to a dead process. Clocks of writers must agree within that.
LEASE_REFRESH_SECONDS = 60.0
LEASE_TIMEOUT_SECONDS = 15 * 60.0
# Garbage collection never deletes an unreferenced pack younger than this (see maintenance.py).
DEFAULT_GRACE_SECONDS = 60 * 60.0


@dataclass
class Progress:
    """What a progress callback receives, at most a few times a second and once at the end."""

    phase: str  # "backup" or "restore"
    bytes_done: int
    bytes_total: int
    files_done: int
    files_total: int
    eta_seconds: float | None


ProgressCallback = Callable[[Progress], None]


@dataclass
class RepositoryStats:
    stored_bytes: int  # everything in the store: packs, index fragments, manifests, config
    pack_count: int
    pack_bytes: int
    chunk_count: int
    chunk_raw_bytes: int  # plaintext bytes of the unique chunks
    snapshot_count: int


class ProgressMeter:
    """Rate-limits callbacks and estimates the time left from the average rate so far."""

    def __init__(
        self,
        phase: str,
        callback: ProgressCallback | None,
        bytes_total: int,
        files_total: int,
        interval_seconds: float = 0.25,
    ):
        self.phase = phase
        self.callback = callback
        self.bytes_total = bytes_total
        self.files_total = files_total
        self.bytes_done = 0
        self.files_done = 0
        self.interval_seconds = interval_seconds
        self.started = time.monotonic()
        self.last_sent = 0.0
        self.lock = threading.Lock()

    def add(self, bytes_done: int = 0, files_done: int = 0) -> None:
        with self.lock:
            self.bytes_done += bytes_done
            self.files_done += files_done
            now = time.monotonic()
            if self.callback is None or now - self.last_sent < self.interval_seconds:
                return
            self.last_sent = now
        self._send(now)

    def finish(self) -> None:
        if self.callback is not None:
            self._send(time.monotonic())

    def _send(self, now: float) -> None:
        elapsed = now - self.started
        eta = None
        if self.bytes_done and elapsed > 0:
            eta = max(0.0, (self.bytes_total - self.bytes_done) * elapsed / self.bytes_done)
        self.callback(
            Progress(
                self.phase,
                self.bytes_done,
                self.bytes_total,
                self.files_done,
                self.files_total,
                eta,
            )
        )


def _as_bytes(secret: str | bytes) -> bytes:
    if isinstance(secret, str):
        secret = secret.encode()
    if not secret:
        raise EngineError("empty master secret")
    return secret


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Repository:
    """Open with `Repository.open(store, secret)` (or `init` a new one)."""

    def __init__(
        self,
        store: Store,
        config: dict[str, Any],
        keys: Keys,
        *,
        workers: int | None = None,
        transfer_workers: int = 8,
    ):
        self.store = store
        self.config = config
        self.keys = keys
        self.id = config["id"]
        self.compression = formats.COMPRESSION_NAMES[config["compression"]]
        self.average_chunk_bytes = int(config["average_chunk_bytes"])
        self.pack_bytes = int(config["pack_bytes"])
        # Hash + compress + encrypt threads: BLAKE3 and lz4 release the GIL, AES-GCM and
        # the chunker do not, so more threads than cores only add contention.
        self.workers = workers or max(2, os.cpu_count() or 2)
        self.transfer_workers = transfer_workers
        self.lease_refresh_seconds = LEASE_REFRESH_SECONDS
        self.lease_timeout_seconds = LEASE_TIMEOUT_SECONDS
        self._index: dict[bytes, IndexEntry] | None = None
        self._manifests: dict[str, Manifest] = {}  # listed since the last refresh
        # Objects already read that cannot change: index objects and manifests are written
        # once, under random names that are never reused (see refresh()).
        self._index_objects: dict[str, list[tuple[bytes, IndexEntry]]] = {}
        self._recent_manifests: collections.OrderedDict[str, Manifest] = collections.OrderedDict()
        self._infos: dict[str, SnapshotInfo] = {}  # of listed snapshots, kept across refresh()
        self._zstd_compressor = None

    # -- creating and opening -------------------------------------------------------------

    @classmethod
    def init(
        cls,
        store: Store,
        secret: str | bytes,
        *,
        compression: str = "lz4",
        average_chunk_bytes: int = DEFAULT_AVERAGE_CHUNK_BYTES,
        pack_bytes: int = DEFAULT_PACK_BYTES,
        kdf_cost: int = 2**15,
        **options: Any,
    ) -> "Repository":
        """Create a repository with fresh random keys wrapped under `secret`."""
        if compression not in formats.COMPRESSION_NAMES:
            raise EngineError(f"unknown compression {compression!r} (lz4, zstd or none)")
        if not 256 <= average_chunk_bytes <= 64 * 1024 * 1024:
            raise EngineError("average chunk size must be between 256 B and 64 MiB")
        if store.exists("config"):
            raise RepositoryExists(f"{store!r} already holds a repository")
        keys = Keys.generate()
        kdf = KdfParameters(salt=os.urandom(16), n=kdf_cost)
        config = {
            "version": formats.FORMAT_VERSION,
            "id": secrets.token_hex(16),
            "created_at": utc_now().isoformat(),
            "kdf": {
                "algorithm": "scrypt",
                "salt": kdf.salt.hex(),
                "n": kdf.n,
                "r": kdf.r,
                "p": kdf.p,
            },
            "keys": wrap_keys(keys, _as_bytes(secret), kdf).hex(),
            "chunk_id": "blake3-keyed",
            "compression": compression,
            "average_chunk_bytes": average_chunk_bytes,
            "pack_bytes": pack_bytes,
        }
        store.put("config", json.dumps(config, indent=2).encode())
        repository = cls(store, config, keys, **options)
        repository._index = {}
        return repository

    @classmethod
    def open(cls, store: Store, secret: str | bytes, **options: Any) -> "Repository":
        """Raise RepositoryNotFound without a config, WrongKey when `secret` does not unlock it."""
        try:
            config = json.loads(store.get("config"))
        except ObjectNotFound:
            raise RepositoryNotFound(f"no repository at {store!r} (run init first)") from None
        except ValueError:
            raise EngineError(f"{store!r}: config is not valid JSON") from None
        if config.get("version") != formats.FORMAT_VERSION:
            raise EngineError(f"unsupported repository format {config.get('version')!r}")
        kdf_config = config["kdf"]
        kdf = KdfParameters(
            bytes.fromhex(kdf_config["salt"]), kdf_config["n"], kdf_config["r"], kdf_config["p"]
        )
        keys = unwrap_keys(
            bytes.fromhex(config["keys"]), _as_bytes(secret), kdf, config["chunk_id"]
        )
        return cls(store, config, keys, **options)

    def rewrap(self, new_secret: str | bytes) -> None:
        """Wrap this repository's keys under `new_secret` (fresh salt, same KDF cost).

        Only the config changes: data stays sealed with the same data key, so this is one small
        atomic write, and from then on only `new_secret` opens the repository."""
        kdf = KdfParameters(os.urandom(16), self.config["kdf"]["n"])
        config = dict(self.config)
        config["kdf"] = {
            **config["kdf"],
            "salt": kdf.salt.hex(),
            "n": kdf.n,
            "r": kdf.r,
            "p": kdf.p,
        }
        config["keys"] = wrap_keys(self.keys, _as_bytes(new_secret), kdf).hex()
        self.store.put("config", json.dumps(config, indent=2).encode())
        self.config = config

    # -- blobs ----------------------------------------------------------------------------

    def _codec(self, data: bytes | memoryview) -> bytes:
        if self.compression == formats.COMPRESSION_LZ4:
            return lz4.frame.compress(data)
        import zstandard

        return zstandard.ZstdCompressor(level=3).compress(data)

    def compress(self, data: bytes | memoryview) -> tuple[bytes | memoryview, int]:
        """Compress with the repository's codec; keep the raw bytes when that is not smaller."""
        if self.compression == formats.COMPRESSION_NONE:
            return data, formats.COMPRESSION_NONE
        if len(data) >= 4 * _PROBE_BYTES:
            # Probe a slice from the middle first: random data and float32 weights with noisy
            # low bytes do not compress with lz4, and lz4 crawls through them at ~0.77 GB/s
            # (about 40 % of the CPU per byte of a backup). A chunk whose probe does not shrink
            # by 3 % is stored raw; rarely that gives up a little compression.
            middle = len(data) // 2
            probe = data[middle : middle + _PROBE_BYTES]
            if len(self._codec(probe)) > _PROBE_BYTES * 0.97:
                return data, formats.COMPRESSION_NONE
        packed = self._codec(data)
        if len(packed) < len(data):
            return packed, self.compression
        return data, formats.COMPRESSION_NONE

    def open_chunk(self, chunk_id: bytes, entry: IndexEntry, blob: bytes | memoryview) -> bytes:
        """Decrypt, decompress and re-derive the id; BlobAuthenticationError on any mismatch."""
        payload = self.keys.open(blob, formats.chunk_associated_data(chunk_id, entry.compression))
        if entry.compression == formats.COMPRESSION_LZ4:
            data = lz4.frame.decompress(payload)
        elif entry.compression == formats.COMPRESSION_ZSTD:
            import zstandard

            data = zstandard.ZstdDecompressor().decompress(
                payload, max_output_size=entry.raw_length
            )
        else:
            data = payload
        if len(data) != entry.raw_length or self.keys.chunk_id(data) != chunk_id:
            raise BlobAuthenticationError("content does not match its chunk id")
        return data

    # -- index ----------------------------------------------------------------------------

    @property
    def index(self) -> dict[bytes, IndexEntry]:
        if self._index is None:
            self._index = self.load_index()
        return self._index

    def load_index(self) -> dict[bytes, IndexEntry]:
        """Read every index object (in parallel); a damaged one is an EngineError."""

        def read(key: str) -> list[tuple[bytes, IndexEntry]] | None:
            name = key.rsplit("/", 1)[1]
            if key in self._index_objects:
                return self._index_objects[key]
            try:
                sealed = self.store.get(key)
            except ObjectNotFound:
                return None  # folded into a combined index after we listed it
            try:
                plain = self.keys.open(sealed, formats.index_associated_data(name))
            except BlobAuthenticationError:
                damaged = f"index {key} is damaged (authentication failed)"
                raise DamagedData(damaged, [], []) from None
            if name.startswith(formats.COMBINED_INDEX_PREFIX):
                entries = formats.decode_combined_index(plain)
            else:
                entries = formats.decode_index(name, plain)
            self._index_objects[key] = entries
            return entries

        for _attempt in range(5):
            keys = [item.key for item in self.store.list("index/")]
            index: dict[bytes, IndexEntry] = {}
            with ThreadPoolExecutor(self.transfer_workers) as pool:
                results = list(pool.map(read, keys))
            for entries in results:
                index.update(entries or ())
            # Garbage collection writes the combined index before it deletes what it replaces:
            # after a vanished object, listing again finds its replacement.
            if all(entries is not None for entries in results):
                break
        # Objects gone from the listing (folded or collected) leave the cache with their entries.
        listed = set(keys)
        self._index_objects = {
            key: entries for key, entries in self._index_objects.items() if key in listed
        }
        return index

    def remember_index_object(self, key: str, entries: list[tuple[bytes, IndexEntry]]) -> None:
        """An index object this process has just written: the next load need not read it."""
        self._index_objects[key] = entries

    def write_combined_index(self, entries: dict[bytes, IndexEntry]) -> str:
        name = formats.COMBINED_INDEX_PREFIX + secrets.token_hex(16)
        sealed = self.keys.seal(
            formats.encode_combined_index(entries), formats.index_associated_data(name)
        )
        self.store.put(f"index/{name}", sealed)
        return f"index/{name}"

    def refresh(self) -> None:
        """Forget what other processes may change (which index objects and snapshots exist);
        keep the objects already read, which never change: the next access lists the store
        and reads only what is new. Backups use this; verify and prune use invalidate()."""
        self._index = None
        self._manifests.clear()

    def invalidate(self) -> None:
        """Forget everything read: the next access reads and authenticates it again."""
        self.refresh()
        self._index_objects.clear()
        self._recent_manifests.clear()
        self._infos.clear()

    # -- snapshots ------------------------------------------------------------------------

    def snapshot_ids(self) -> list[str]:
        return [item.key.rsplit("/", 1)[1] for item in self.store.list("snapshots/")]

    def manifest(self, reference: str) -> Manifest:
        """The manifest of a snapshot: a full id, a unique prefix of one, or `latest`."""
        return self._manifest(self.resolve_snapshot(reference))

    def _manifest(self, snapshot_id: str) -> Manifest:
        """The manifest of an exact id (no listing to resolve it)."""
        if snapshot_id not in self._manifests and snapshot_id in self._recent_manifests:
            self._manifests[snapshot_id] = self._recent_manifests[snapshot_id]
        if snapshot_id not in self._manifests:
            try:
                sealed = self.store.get(formats.snapshot_key(snapshot_id))
            except ObjectNotFound:
                raise SnapshotNotFound(f"snapshot {snapshot_id} not found") from None
            try:
                plain = self.keys.open(sealed, formats.snapshot_associated_data(snapshot_id))
            except BlobAuthenticationError:
                raise DamagedData(f"snapshot {snapshot_id} manifest is damaged", [], []) from None
            self._manifests[snapshot_id] = Manifest.decode(plain)
        return self._manifests[snapshot_id]

    def resolve_snapshot(self, reference: str) -> str:
        """A full id, a unique prefix of one, or `latest`."""
        if reference in self._manifests:
            return reference
        if reference == "latest":
            listed = self.snapshots()
            if not listed:
                raise SnapshotNotFound("the repository has no snapshots")
            return listed[-1].id
        ids = self.snapshot_ids()
        matches = [snapshot_id for snapshot_id in ids if snapshot_id.startswith(reference)]
        if len(matches) != 1 or not reference:
            what = "is ambiguous" if matches else "not found"
            raise SnapshotNotFound(f"snapshot {reference!r} {what}")
        return matches[0]

    def snapshots(self) -> list[SnapshotInfo]:
        """Every snapshot, oldest first.

        One listing for all (resolving each id would list the store again: quadratic in the
        number of snapshots, which continuous sync makes large), and only the manifests not read
        before: a manifest never changes once written, so a follower listing every few seconds
        reads just the new syncs."""

        def read(snapshot_id: str) -> SnapshotInfo | None:
            try:
                return self._manifest(snapshot_id).info
            except SnapshotNotFound:
                return None  # forgotten by a prune since the listing

        ids = self.snapshot_ids()
        new = [snapshot_id for snapshot_id in ids if snapshot_id not in self._infos]
        with ThreadPoolExecutor(self.transfer_workers) as pool:
            read_now = dict(zip(new, pool.map(read, new), strict=True))
        known = {**self._infos, **read_now}
        self._infos = {snapshot_id: known[snapshot_id] for snapshot_id in ids if known[snapshot_id]}
        return sorted(self._infos.values(), key=lambda info: info.time)

    def write_manifest(self, manifest: Manifest) -> int:
        sealed = self.keys.seal(
            manifest.encode(), formats.snapshot_associated_data(manifest.info.id)
        )
        self.store.put(formats.snapshot_key(manifest.info.id), sealed)
        self._manifests[manifest.info.id] = manifest
        # The next backup's parent: kept across refresh(), so it is not read and decoded again.
        self._recent_manifests[manifest.info.id] = manifest
        while len(self._recent_manifests) > _RECENT_MANIFESTS:
            self._recent_manifests.popitem(last=False)
        return len(sealed)

    # -- leases ---------------------------------------------------------------------------

    def acquire_lease(self, kind: str) -> "Lease":
        lease = Lease(self, kind)
        lease.write()
        return lease

    def active_leases(self, kind: str) -> list[dict[str, Any]]:
        """Leases of `kind` refreshed within the timeout; stale ones belong to dead processes."""
        now = time.time()
        found = []
        for item in self.store.list("locks/"):
            name = item.key.rsplit("/", 1)[1]
            if not name.startswith(kind + "-"):
                continue
            try:
                lease = json.loads(self.store.get(item.key))
            except (ObjectNotFound, ValueError):
                continue
            if now - lease.get("refreshed_at", 0) < self.lease_timeout_seconds:
                lease["key"] = item.key
                found.append(lease)
        return found

    # -- the operations (implemented in their own modules) --------------------------------

    def backup(
        self,
        path: str | os.PathLike,
        *,
        parent: str | None = "latest",
        progress: ProgressCallback | None = None,
        tags: list[str] | tuple = (),
        time: dt.datetime | None = None,
    ) -> SnapshotInfo:
        """Back up `path`; `parent` ("latest" = newest snapshot of the same source, None = none)
        lets unchanged files (size, mtime_ns, inode) be skipped without reading them."""
        from snapshots.engine.backup import run_backup

        return run_backup(
            self, Path(path), parent=parent, progress=progress, tags=list(tags), snapshot_time=time
        )

    def restore(
        self,
        snapshot_id: str,
        target: str | os.PathLike,
        *,
        paths: list[str] | None = None,
        progress: ProgressCallback | None = None,
    ) -> "RestoreResult":
        """Restore a snapshot (or only `paths` of it) under `target`; DamagedData if a chunk
        fails its checks (every intact file is still restored)."""
        from snapshots.engine.restore import run_restore

        return run_restore(self, snapshot_id, Path(target), paths=paths, progress=progress)

    def verify(self, *, read_data: bool = False) -> "VerifyReport":
        from snapshots.engine.maintenance import verify

        return verify(self, read_data=read_data)

    def prune(
        self,
        policy: "RetentionPolicy",
        *,
        collect_garbage: bool = True,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        now: dt.datetime | None = None,
    ) -> "PruneResult":
        from snapshots.engine.maintenance import prune

        return prune(
            self, policy, collect_garbage=collect_garbage, grace_seconds=grace_seconds, now=now
        )

    def diff(self, first: str, second: str) -> "SnapshotDiff":
        from snapshots.engine.maintenance import diff

        return diff(self, first, second)

    def stats(self) -> RepositoryStats:
        stored = packs = pack_total = 0
        for item in self.store.list(""):
            stored += item.size
            if item.key.startswith("data/"):
                packs += 1
                pack_total += item.size
        index = self.index
        return RepositoryStats(
            stored_bytes=stored,
            pack_count=packs,
            pack_bytes=pack_total,
            chunk_count=len(index),
            chunk_raw_bytes=sum(entry.raw_length for entry in index.values()),
            snapshot_count=len(self.snapshot_ids()),
        )


class Lease:
    """`locks/<kind>-<id>`: who runs, since when; refreshed by a thread until released."""

    def __init__(self, repository: Repository, kind: str):
        self.repository = repository
        self.key = f"locks/{kind}-{secrets.token_hex(8)}"
        self.started_at = time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def write(self) -> None:
        document = {
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": self.started_at,
            "refreshed_at": time.time(),
        }
        self.repository.store.put(self.key, json.dumps(document).encode())

    def keep_alive(self) -> None:
        def refresh() -> None:
            while not self._stop.wait(self.repository.lease_refresh_seconds):
                try:
                    self.write()
                except Exception:
                    continue  # a failed refresh is retried next period

        self._thread = threading.Thread(target=refresh, name="lease-refresh", daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.repository.store.delete(self.key)

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


__all__ = ["Progress", "Repository", "RepositoryStats", "WrongKey"]
