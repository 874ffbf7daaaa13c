"""Snapshot engine vs restic: first backup, incremental backup after a ~1 % change, restore.

Generates a seeded workspace (~40 % random bytes, ~40 % float32 checkpoint-like data, ~20 %
about 5,000 small text files), then per run and per contender: a fresh repository, a first
backup, the same ~1 % change, a second backup, a restore of the second snapshot. Contenders:
our engine on a local folder, `restic` (Debian package) on a local folder, our engine on a moto
S3 server. Same disk for all; the workspace stays in the page cache for everyone.
Run:
    .venv/bin/python bench/snapshot.py [--size-gib 2] [--runs 3]
    .venv/bin/python bench/snapshot.py --size-gib 0.5 --choose-chunk-size   # 256K/1M/4M
    .venv/bin/python bench/snapshot.py --size-gib 0.5 --compare-pools       # threads/processes
    .venv/bin/python bench/snapshot.py --size-gib 1 --profile   # needs `pip install py-spy`
"""

import argparse
import concurrent.futures
import datetime as dt
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from snapshots.engine import LocalStore, Repository, S3Store  # noqa: E402

SECRET = "bench-secret"
MIB = 1024 * 1024
WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "for",
    "that",
    "with",
    "on",
    "as",
    "was",
    "by",
    "at",
    "be",
    "this",
    "are",
    "from",
    "or",
    "it",
    "an",
    "have",
    "not",
    "model",
    "loss",
    "epoch",
    "batch",
    "gradient",
    "tensor",
    "layer",
    "weight",
    "bias",
    "train",
    "eval",
    "step",
    "learning",
    "rate",
    "dataset",
    "token",
    "attention",
    "head",
    "norm",
    "dropout",
    "adam",
    "warmup",
    "checkpoint",
    "cuda",
    "device",
    "memory",
]


def random_block(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


def float_block(rng: random.Random, base: bytes) -> bytes:
    # float32 little-endian: byte 0 is the low mantissa byte. Keeping the high bytes of a slowly
    # varying series and randomising the low one looks like trained weights to a compressor.
    block = bytearray(base)
    block[0::4] = rng.randbytes(len(block) // 4)
    return bytes(block)


def float_base(rng: random.Random, count: int) -> bytes:
    import array

    value, values = 0.0, array.array("f")
    for _ in range(count):
        value += rng.gauss(0, 0.001)
        values.append(value)
    return values.tobytes()


def text_file(rng: random.Random, corpus: str, size: int, number: int) -> bytes:
    start = rng.randrange(0, len(corpus) - size)
    return f"# file {number} seed {rng.random()}\n{corpus[start : start + size]}".encode()


def generate(root: Path, size_bytes: int, seed: int = 42) -> int:
    """Write the workspace; returns its byte count."""
    rng = random.Random(seed)
    shutil.rmtree(root, ignore_errors=True)
    (root / "random").mkdir(parents=True)
    (root / "checkpoints").mkdir()
    total = 0
    random_bytes, float_bytes = int(size_bytes * 0.4), int(size_bytes * 0.4)
    file_bytes = 64 * MIB
    number = 0
    while total < random_bytes:
        data = random_block(rng, min(file_bytes, random_bytes - total))
        (root / "random" / f"blob-{number:03}.bin").write_bytes(data)
        total += len(data)
        number += 1
    base = float_base(rng, MIB)  # 4 MiB of float32
    number = 0
    while total < random_bytes + float_bytes:
        with open(root / "checkpoints" / f"step-{number:03}.pt", "wb") as handle:
            for _ in range(
                max(1, min(file_bytes, random_bytes + float_bytes - total) // len(base))
            ):
                total += handle.write(float_block(rng, base))
        number += 1
    corpus = " ".join(rng.choice(WORDS) for _ in range(400_000))
    text_total = size_bytes - total
    count = 5000
    for number in range(count):
        directory = root / "code" / f"pkg{number % 50:02}"
        directory.mkdir(parents=True, exist_ok=True)
        size = max(100, min(len(corpus) - 1, int(rng.expovariate(count / text_total))))
        data = text_file(rng, corpus, size, number)
        (directory / f"module_{number:04}.py").write_bytes(data)
        total += len(data)
    return total


def change(root: Path, revert: bool = False) -> int:
    """Overwrite ~1 % of the workspace in place (deterministic); `revert` writes it back."""
    changed = 0
    randoms = sorted((root / "random").iterdir())[::4]
    floats = sorted((root / "checkpoints").iterdir())[::4]
    texts = sorted((root / "code").rglob("*.py"))[::100]
    if not hasattr(change, "originals"):
        change.originals = {}
    for path in randoms + floats:
        with open(path, "r+b") as handle:
            offset = path.stat().st_size // 2
            if revert:
                handle.seek(offset)
                handle.write(change.originals[path])
                continue
            handle.seek(offset)
            change.originals[path] = handle.read(2 * MIB)
            handle.seek(offset)
            changed += handle.write(random.Random(str(path)).randbytes(2 * MIB))
    for path in texts:
        if revert:
            path.write_bytes(change.originals[path])
            continue
        change.originals[path] = path.read_bytes()
        with open(path, "ab") as handle:
            changed += handle.write(b"\n# an edit\n" * 20)
    return changed


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def timed(function):
    # Flush dirty pages first, so no phase pays for the previous one's writeback.
    os.sync()
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return process, f"http://127.0.0.1:{port}"


def run_engine(store, workspace: Path, scratch: Path, average_chunk_bytes: int | None) -> dict:
    options = {"average_chunk_bytes": average_chunk_bytes} if average_chunk_bytes else {}
    repository = Repository.init(store, SECRET, **options)
    first_seconds, first = timed(lambda: repository.backup(workspace))
    change(workspace)
    second_seconds, second = timed(lambda: repository.backup(workspace))
    target = scratch / f"restore-engine-{time.monotonic_ns()}"
    restore_seconds, _ = timed(lambda: repository.restore(second.id, target))
    change(workspace, revert=True)
    return {
        "first": first_seconds,
        "second": second_seconds,
        "restore": restore_seconds,
        "stored_first": first.added_bytes,
        "added_second": second.added_bytes,
    }


def run_restic(workspace: Path, scratch: Path) -> dict:
    repository = scratch / "restic-repo"
    environment = {**os.environ, "RESTIC_PASSWORD": SECRET, "RESTIC_REPOSITORY": str(repository)}

    def restic(*arguments: str) -> None:
        subprocess.run(
            ["restic", "--quiet", *arguments],
            env=environment,
            check=True,
            stdout=subprocess.DEVNULL,
        )

    restic("init")
    first_seconds, _ = timed(lambda: restic("backup", str(workspace)))
    stored_first = du(repository)
    change(workspace)
    second_seconds, _ = timed(lambda: restic("backup", str(workspace)))
    added_second = du(repository) - stored_first
    target = scratch / "restore-restic"
    restore_seconds, _ = timed(lambda: restic("restore", "latest", "--target", str(target)))
    change(workspace, revert=True)
    return {
        "first": first_seconds,
        "second": second_seconds,
        "restore": restore_seconds,
        "stored_first": stored_first,
        "added_second": added_second,
    }


def settle(scratch: Path) -> None:
    """Delete what earlier phases left, then let the disk settle: the root file system is
    mounted with `discard`, and the TRIMs of a large delete slowed the next phase's writes by
    2x (measured: a 1 GiB restore took 2.0 s, or 4.1-4.2 s right after deleting the last one)."""
    for path in scratch.iterdir():
        if path.name != "workspace":
            shutil.rmtree(path, ignore_errors=True)
    os.sync()
    time.sleep(20)


def run_engine_s3(workspace: Path, scratch: Path, run: int) -> dict:
    moto, endpoint = start_moto()
    try:
        store = S3Store(
            f"bench-{run}",
            "ws",
            endpoint_url=endpoint,
            access_key_id="bench",
            secret_access_key="bench",
        )
        store.client.create_bucket(Bucket=store.bucket)
        return run_engine(store, workspace, scratch, None)
    finally:
        moto.terminate()
        moto.wait()


def choose_chunk_size(workspace: Path, scratch: Path, total: int, runs: int) -> None:
    print(f"\nmedian of {runs} runs per size (MB/s = workspace bytes / wall seconds)")
    print(
        "| average chunk | first backup | incremental | restore | stored after 1 % change "
        "| chunks in index |"
    )
    print("|---|---|---|---|---|---|")
    for average in (256 * 1024, MIB, 4 * MIB):
        rows = []
        for _run in range(runs):
            settle(scratch)
            store = LocalStore(scratch / "repo-chunks")
            rows.append(run_engine(store, workspace, scratch, average))
            chunks = len(Repository.open(store, SECRET).index)
        first, second, restore = (
            total / statistics.median(row[phase] for row in rows) / 1e6
            for phase in ("first", "second", "restore")
        )
        added = statistics.median(row["added_second"] for row in rows) / MIB
        print(
            f"| {average // 1024} KiB | {first:.0f} MB/s | {second:.0f} MB/s | "
            f"{restore:.0f} MB/s | {added:.1f} MiB | {chunks} |"
        )


def compare_pools(workspace: Path) -> None:
    """Hash + compress + seal 1 MiB pieces of the workspace: 2 threads vs 2 processes."""
    from snapshots.engine.crypto import Keys

    pieces = []
    for path in sorted(workspace.rglob("*.bin"))[:4] + sorted(workspace.rglob("*.pt"))[:4]:
        data = path.read_bytes()
        pieces += [data[offset : offset + MIB] for offset in range(0, len(data), MIB)]
    size = sum(map(len, pieces))
    for kind in ("thread", "process"):
        pool_class = (
            concurrent.futures.ThreadPoolExecutor
            if kind == "thread"
            else concurrent.futures.ProcessPoolExecutor
        )
        with pool_class(2) as pool:
            list(pool.map(_seal_piece, pieces[:4]))  # warm up (process start, keys)
            seconds, _ = timed(lambda: list(pool.map(_seal_piece, pieces, chunksize=4)))
        print(
            f"2 {kind} workers: hash + lz4 + AES-GCM of {size / MIB:.0f} MiB: "
            f"{size / seconds / 1e6:.0f} MB/s"
        )
    del Keys


_KEYS = None


def _seal_piece(piece: bytes) -> int:
    import lz4.frame

    from snapshots.engine.crypto import Keys

    global _KEYS
    if _KEYS is None:
        _KEYS = Keys(b"k" * 32, b"i" * 32)
    chunk_id = _KEYS.chunk_id(piece)
    return len(_KEYS.seal(lz4.frame.compress(piece), chunk_id))


def profile(workspace: Path, scratch: Path) -> None:
    """py-spy samples every thread of a first backup; prints where the samples landed."""
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from snapshots.engine import LocalStore, Repository;"
        "r = Repository.init(LocalStore(sys.argv[2]), 'x');"
        "r.backup(sys.argv[3])"
    )
    raw = scratch / "profile.txt"
    subprocess.run(
        [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--format",
            "raw",
            "--rate",
            "200",
            "--idle",
            "--threads",
            "--output",
            str(raw),
            "--",
            sys.executable,
            "-c",
            script,
            str(ROOT),
            str(scratch / "repo-profile"),
            str(workspace),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    source = (ROOT / "snapshots" / "engine" / "backup.py").read_text().splitlines()
    cut_line = next(n for n, text in enumerate(source, 1) if "next(fresh)" in text)
    rules = [  # (label, text in a frame), matched from the innermost frame outwards
        ("chunking (FastCDC)", "ChunkPipeline._cut"),
        ("chunking (FastCDC)", f"_chunk_block (snapshots/engine/backup.py:{cut_line})"),
        ("hashing (keyed BLAKE3)", "_blake3_id"),
        ("hashing (keyed BLAKE3)", "_hmac_id"),
        ("compression (lz4, with probe)", "Repository.compress"),
        ("encryption (AES-256-GCM)", "Keys.seal"),
        ("pack + index write, fsync", "LocalStore.put"),
        ("file reads", "read_bytes"),
        ("file reads", "read-block"),  # the thread that reads blocks of large files
        ("scan (lstat)", "scan_tree"),
        ("manifest + index encoding", "json"),
        ("pipeline bookkeeping (futures, queues)", "backup.py"),
    ]
    idle_leaves = ("wait (threading", "_worker (concurrent", "acquire")
    busy = Counter()
    idle = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if "lease-refresh" in frames[0] or "KdfParameters" in stack:
            continue
        if any(needle in frames[-1] for needle in idle_leaves):
            idle += int(count)
            continue
        label = next(
            (name for frame in reversed(frames) for name, needle in rules if needle in frame),
            "other (interpreter, imports)",
        )
        busy[label] += int(count)
    total = sum(busy.values())
    print(
        "\nprofile of a first backup (py-spy --idle --threads, all threads; share of the "
        f"samples where a thread was not waiting for work, {idle / (idle + total):.0%} were):"
    )
    for label, count in busy.most_common():
        print(f"  {100 * count / total:5.1f} %  {label}")
    shutil.rmtree(scratch / "repo-profile")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-gib", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default=str(ROOT / "var" / "bench-snapshot"))
    parser.add_argument("--no-restic", action="store_true")
    parser.add_argument("--no-s3", action="store_true")
    parser.add_argument("--choose-chunk-size", action="store_true")
    parser.add_argument("--compare-pools", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the workspace afterwards")
    arguments = parser.parse_args()

    scratch = Path(arguments.dir)
    scratch.mkdir(parents=True, exist_ok=True)
    workspace = scratch / "workspace"
    seconds, total = timed(lambda: generate(workspace, int(arguments.size_gib * 1024**3)))
    files = sum(1 for path in workspace.rglob("*") if path.is_file())
    print(
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"workspace: {total / 1e6:.0f} MB in {files} files (generated in {seconds:.0f} s)")
    try:
        if arguments.choose_chunk_size:
            choose_chunk_size(workspace, scratch, total, arguments.runs)
            return
        if arguments.compare_pools:
            compare_pools(workspace)
            return
        if arguments.profile:
            profile(workspace, scratch)
            return
        results = {"engine (local)": [], "restic (local)": [], "engine (moto S3)": []}
        contenders = [
            (
                "engine (local)",
                lambda run: run_engine(
                    LocalStore(scratch / "repo-engine"), workspace, scratch, None
                ),
            )
        ]
        if not arguments.no_restic:
            contenders.append(("restic (local)", lambda run: run_restic(workspace, scratch)))
        if not arguments.no_s3:
            contenders.append(
                ("engine (moto S3)", lambda run: run_engine_s3(workspace, scratch, run))
            )
        for run in range(arguments.runs):
            settle(scratch)
            # Rotate the order: whoever runs first after the deletes pays for the disk's TRIMs.
            for name, contender in (
                contenders[run % len(contenders) :] + contenders[: run % len(contenders)]
            ):
                results[name].append(contender(run))
            print(
                f"run {run + 1}: "
                + "; ".join(
                    f"{name} {r[-1]['first']:.1f}/{r[-1]['second']:.1f}/{r[-1]['restore']:.1f} s"
                    for name, r in results.items()
                    if r
                )
            )
        report(results, total, arguments.runs)
    finally:
        if not arguments.keep:
            shutil.rmtree(scratch, ignore_errors=True)


def report(results: dict, total: int, runs: int) -> None:
    print(
        f"\nmedian of {runs} runs; MB/s = workspace bytes / wall seconds "
        "(the incremental backup scans the whole workspace)"
    )
    restic = results.get("restic (local)")
    header = "| contender | first backup | incremental (1 %) | restore | stored | added by incr. |"
    print(header)
    print("|---|---|---|---|---|---|")
    for name, rows in results.items():
        if not rows:
            continue
        cells = []
        for phase in ("first", "second", "restore"):
            seconds = statistics.median(row[phase] for row in rows)
            cell = f"{seconds:.2f} s = {total / seconds / 1e6:.0f} MB/s"
            if restic and name != "restic (local)":
                ratio = statistics.median(row[phase] for row in restic) / seconds
                cell += f" ({ratio:.1f}x restic)"
            cells.append(cell)
        stored = statistics.median(row["stored_first"] for row in rows) / MIB
        added = statistics.median(row["added_second"] for row in rows) / MIB
        print(f"| {name} | " + " | ".join(cells) + f" | {stored:.0f} MiB | {added:.1f} MiB |")
    for name, rows in results.items():
        for phase in ("first", "second", "restore"):
            if rows:
                print(f"  {name} {phase}: " + ", ".join(f"{row[phase]:.2f}" for row in rows))


if __name__ == "__main__":
    main()
