"""Where chunks end: FastCDC cut points, and the parent snapshot's cut points where the
content proves them.

FastCDC (the `fastcdc` package, Cython) runs at ~2.2 GB/s and holds the GIL for a whole call
(~7 ms per 16 MiB on the bench machine). In an incremental backup it was the largest cost: a
64 MiB checkpoint with 2 MiB rewritten must be read and hashed whole (its mtime changed, so
its content is unknown), and it was also cut whole, while the hashing threads waited for the
GIL. Hashing (keyed BLAKE3) releases the GIL and is twice as fast as cutting on one core
(487 MiB of the bench's changed files: 220 ms to cut, 110 ms to hash).

Why a previous chunk, when its content is found again, is exactly the chunk FastCDC would cut:
FastCDC decides where a chunk ends from the bytes between its start and its end alone. From
the chunk's start it skips `min_chunk` bytes, then rolls a gear hash that starts at zero and
cuts at the first position whose hash has the mask's bits clear, or at `max_chunk` (mask,
sizes and gear table do not depend on anything else). So when the new file has a chunk
boundary at offset p, and the bytes from p on begin with the whole content of a chunk of the
parent's file (same keyed hash, so the same bytes), FastCDC started at p cuts exactly where
that chunk ends. The exception is the parent's last chunk, which the end of the file may have
cut: it counts only where the new file ends at the same place.

So `ChunkPipeline.add_file` walks a changed file from boundary to boundary: where a previous
chunk may start (same offset, or shifted by the change in file size), it hashes the bytes that
chunk would cover (in the worker threads, several ahead) and takes it when the hashes match;
everywhere else it cuts with FastCDC, until a cut lands where a previous chunk may start
again. Every byte is still read and hashed; only the cut-point search over the ranges proven
unchanged is saved, and the chunks are the ones a full FastCDC pass would give. A guess that
does not match costs one hash; chunks are always named by the hash of the bytes read now.

Cut points do not depend on how a file is read in blocks either: only the last cut of a
block, which the block's end may have forced, is carried into the next block and cut again.
"""

from fastcdc import fastcdc


def cut_points(data, min_chunk: int, average_chunk: int, max_chunk: int):
    """FastCDC chunks (offset, length) of `data`, lazily (C code; holds the GIL per chunk)."""
    return fastcdc(data, min_chunk, average_chunk, max_chunk)


class PreviousLayout:
    """A file's chunks in the parent snapshot: where each started, its length and id."""

    def __init__(self, chunks: list[tuple[bytes, int]], size: int):
        self.chunks = chunks  # (id, length) in file order
        self.starts: dict[int, int] = {}
        offset = 0
        for position, (_chunk_id, length) in enumerate(chunks):
            self.starts[offset] = position
            offset += length
        self.size_change = size - offset

    @classmethod
    def of(
        cls, hex_ids: list[str], index: dict, size: int, max_chunk: int
    ) -> "PreviousLayout | None":
        """From a manifest's chunk list and the index (for the lengths); None if a chunk is
        not in the index any more, or is longer than this backup's chunks can be (the walk
        relies on that bound), and then the file is cut in full."""
        chunks = []
        for hex_id in hex_ids:
            chunk_id = bytes.fromhex(hex_id)
            entry = index.get(chunk_id)
            if entry is None or not 0 < entry.raw_length <= max_chunk:
                return None
            chunks.append((chunk_id, entry.raw_length))
        return cls(chunks, size) if chunks else None

    def candidates(self, offset: int) -> list[int]:
        """Positions of previous chunks that may start at `offset` of the new file: at the
        same offset (before a change), or shifted by the change in size (after it)."""
        found = []
        for old_offset in (offset, offset - self.size_change):
            position = self.starts.get(old_offset)
            if position is not None and position not in found:
                found.append(position)
        return found

    def is_last(self, position: int) -> bool:
        """The parent's last chunk, whose end the end of the file may have forced."""
        return position == len(self.chunks) - 1
