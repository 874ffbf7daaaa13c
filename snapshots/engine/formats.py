"""What a repository stores, byte by byte.

    config              plaintext JSON: format version, repository id, scrypt parameters, the
                        wrapped keys, compression and chunk/pack sizes
    data/<ab>/<pack>    a pack: sealed chunk blobs back to back, nothing else (tens of MiB)
    index/<pack>        the pack's index fragment, sealed: (chunk id, offset, length, raw
                        length, compression) per blob; written right after its pack
    index/c-<id>        a combined index, sealed: the same records with their pack id; garbage
                        collection folds every fragment into one, so opening a repository
                        reads one object instead of one per pack
    snapshots/<id>      a snapshot manifest, sealed: the summary and the whole file tree
    locks/<kind>-<id>   plaintext JSON leases of running backups and of garbage collection

A pack without its index fragment (a crash between the two puts) is invisible and garbage
collection removes it; a manifest is written last, so a crashed backup never leaves a
snapshot that points at missing data.
"""

import json
import struct
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import lz4.frame

FORMAT_VERSION = 1

COMPRESSION_NONE = 0
COMPRESSION_LZ4 = 1
COMPRESSION_ZSTD = 2
COMPRESSION_NAMES = {"none": COMPRESSION_NONE, "lz4": COMPRESSION_LZ4, "zstd": COMPRESSION_ZSTD}

_INDEX_RECORD = struct.Struct("<32sQIIB")
_COMBINED_RECORD = struct.Struct("<16s32sQIIB")  # pack ids are 16 random bytes in hex
COMBINED_INDEX_PREFIX = "c-"


class IndexEntry(NamedTuple):
    pack_id: str
    offset: int
    length: int  # bytes of the sealed blob in the pack
    raw_length: int  # bytes of the chunk's plaintext
    compression: int


def pack_key(pack_id: str) -> str:
    return f"data/{pack_id[:2]}/{pack_id}"


def index_key(pack_id: str) -> str:
    return f"index/{pack_id}"


def snapshot_key(snapshot_id: str) -> str:
    return f"snapshots/{snapshot_id}"


def chunk_associated_data(chunk_id: bytes, compression: int) -> bytes:
    return b"chunk:" + chunk_id + bytes([compression])


def index_associated_data(pack_id: str) -> bytes:
    return b"index:" + pack_id.encode()


def snapshot_associated_data(snapshot_id: str) -> bytes:
    return b"snapshot:" + snapshot_id.encode()


def encode_index(entries: list[tuple[bytes, IndexEntry]]) -> bytes:
    return b"".join(
        _INDEX_RECORD.pack(chunk_id, e.offset, e.length, e.raw_length, e.compression)
        for chunk_id, e in entries
    )


def decode_index(pack_id: str, data: bytes) -> list[tuple[bytes, IndexEntry]]:
    return [
        (chunk_id, IndexEntry(pack_id, offset, length, raw_length, compression))
        for chunk_id, offset, length, raw_length, compression in _INDEX_RECORD.iter_unpack(data)
    ]


def encode_combined_index(entries: dict[bytes, IndexEntry]) -> bytes:
    return b"".join(
        _COMBINED_RECORD.pack(
            bytes.fromhex(e.pack_id), chunk_id, e.offset, e.length, e.raw_length, e.compression
        )
        for chunk_id, e in entries.items()
    )


def decode_combined_index(data: bytes) -> list[tuple[bytes, IndexEntry]]:
    return [
        (chunk_id, IndexEntry(pack.hex(), offset, length, raw_length, compression))
        for pack, chunk_id, offset, length, raw_length, compression in (
            _COMBINED_RECORD.iter_unpack(data)
        )
    ]


@dataclass
class SnapshotInfo:
    """One snapshot as listed; `summary` holds the counters of the backup that made it."""

    id: str
    time: str  # ISO 8601, UTC
    source: str
    hostname: str
    parent: str | None
    tags: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def added_bytes(self) -> int:
        """What the repository grew by (packs, index fragments, manifest): the billable part."""
        return int(self.summary.get("added_bytes", self.summary.get("uploaded_bytes", 0)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": self.time,
            "source": self.source,
            "hostname": self.hostname,
            "parent": self.parent,
            "tags": self.tags,
            "summary": self.summary,
        }


@dataclass
class Manifest:
    info: SnapshotInfo
    # Tree entries, sorted by path, `/`-separated and relative to the source:
    #   {"path", "type": "file"|"dir"|"symlink", "mode", "mtime_ns", and for files
    #    "size", "inode", "chunks": [hex ids]; for symlinks "target"}
    tree: list[dict[str, Any]]
    _tree_json: str | None = field(default=None, repr=False, compare=False)

    def encode(self) -> bytes:
        # The tree is encoded once: a backup encodes the manifest again while it settles the
        # summary's added_bytes. ensure_ascii keeps undecodable file names (surrogate escapes)
        # representable.
        if self._tree_json is None:
            self._tree_json = json.dumps(self.tree, separators=(",", ":"))
        snapshot = json.dumps(self.info.to_dict(), separators=(",", ":"))
        document = f'{{"version":{FORMAT_VERSION},"snapshot":{snapshot},"tree":{self._tree_json}}}'
        return lz4.frame.compress(document.encode())

    @classmethod
    def decode(cls, data: bytes) -> "Manifest":
        document = json.loads(lz4.frame.decompress(data))
        return cls(SnapshotInfo(**document["snapshot"]), document["tree"])
