"""`python -m snapshots.engine`: the command line of the snapshot engine.

Repository: `--repo PATH` or `--repo s3://bucket/prefix` (with `--endpoint-url` for MinIO, B2,
...; credentials from the usual AWS variables), or `--repo https://.../storage/v1/` (the storage
gateway; its token in env `DUMONT_STORAGE_TOKEN`), or env `DUMONT_SNAPSHOT_REPOSITORY`.
Master secret: `--secret-file FILE` or env `DUMONT_SNAPSHOT_SECRET`.
Any error prints one line on stderr and exits 1 (2 for usage errors, 3 for damaged data).
"""

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from snapshots.engine.exceptions import DamagedData, EngineError
from snapshots.engine.maintenance import RetentionPolicy
from snapshots.engine.repository import Progress, Repository
from snapshots.engine.store import open_store

EXIT_ERROR = 1
EXIT_DAMAGED = 3


def add_global_options(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("--repo", default=default, help="a folder or s3://bucket/prefix")
    parser.add_argument("--endpoint-url", default=default, help="S3 endpoint (MinIO, B2, ...)")
    parser.add_argument("--secret-file", default=default, help="file with the master secret")
    for flag, text in (
        ("--json", "machine-readable output"),
        ("--quiet", "no progress"),
        ("--progress-jsonl", "progress as one JSON object per line on stderr (for the agent)"),
    ):
        parser.add_argument(flag, action="store_true", default=default or False, help=text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m snapshots.engine", description="Deduplicated, encrypted snapshots."
    )
    add_global_options(parser, default=None)
    parser.set_defaults(
        repo=os.environ.get("DUMONT_SNAPSHOT_REPOSITORY"),
        endpoint_url=os.environ.get("DUMONT_SNAPSHOT_ENDPOINT_URL"),
    )
    # The global options are accepted after the command too, without overwriting those before.
    subparser_common = argparse.ArgumentParser(add_help=False)
    add_global_options(subparser_common, default=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)

    init = commands.add_parser("init", parents=[subparser_common], help="create a repository")
    init.add_argument("--compression", choices=["lz4", "zstd", "none"], default="lz4")
    init.add_argument("--average-chunk-bytes", type=int)
    init.add_argument("--pack-bytes", type=int)

    backup = commands.add_parser(
        "backup", parents=[subparser_common], help="back up a directory; prints the snapshot id"
    )
    backup.add_argument("path")
    backup.add_argument(
        "--parent",
        default="latest",
        help="snapshot to compare with (default: latest of the same path)",
    )
    backup.add_argument("--no-parent", action="store_true", help="read every file")
    backup.add_argument("--tag", action="append", default=[])

    restore = commands.add_parser(
        "restore", parents=[subparser_common], help="restore a snapshot into a directory"
    )
    restore.add_argument("snapshot")
    restore.add_argument("target")
    restore.add_argument("--path", action="append", help="restore only this path (repeatable)")

    verify = commands.add_parser("verify", parents=[subparser_common], help="check the repository")
    verify.add_argument("--read-data", action="store_true", help="decrypt and check every chunk")

    prune = commands.add_parser(
        "prune", parents=[subparser_common], help="forget snapshots and delete unreferenced data"
    )
    prune.add_argument("--keep-last", type=int, default=0)
    prune.add_argument("--keep-daily", type=int, default=0)
    prune.add_argument("--keep-weekly", type=int, default=0)
    prune.add_argument("--grace-seconds", type=float)
    prune.add_argument("--no-gc", action="store_true", help="only forget snapshots")

    diff = commands.add_parser(
        "diff", parents=[subparser_common], help="paths added, removed and changed"
    )
    diff.add_argument("first")
    diff.add_argument("second")

    commands.add_parser("snapshots", parents=[subparser_common], help="list snapshots")
    commands.add_parser("stats", parents=[subparser_common], help="repository size")
    return parser


def read_secret(arguments: argparse.Namespace) -> bytes:
    if arguments.secret_file:
        try:
            secret = Path(arguments.secret_file).read_bytes().strip()
        except OSError as error:
            raise EngineError(f"{arguments.secret_file}: {error.strerror}") from None
    else:
        secret = os.environ.get("DUMONT_SNAPSHOT_SECRET", "").encode()
    if not secret:
        raise EngineError("no master secret: use --secret-file or DUMONT_SNAPSHOT_SECRET")
    return secret


def print_progress(progress: Progress) -> None:
    eta = f", ETA {progress.eta_seconds:.0f} s" if progress.eta_seconds is not None else ""
    done_mib, total_mib = progress.bytes_done / 2**20, progress.bytes_total / 2**20
    print(
        f"\r{progress.phase}: {done_mib:.0f}/{total_mib:.0f} MiB, "
        f"{progress.files_done}/{progress.files_total} files{eta}   ",
        end="",
        file=sys.stderr,
        flush=True,
    )


def print_progress_jsonl(progress: Progress) -> None:
    print(json.dumps(dataclasses.asdict(progress)), file=sys.stderr, flush=True)


def emit(arguments: argparse.Namespace, document: Any, text: str) -> None:
    if arguments.json:
        if dataclasses.is_dataclass(document):
            document = dataclasses.asdict(document)
        print(json.dumps(document, indent=2))
    else:
        print(text)


def run(arguments: argparse.Namespace) -> int:
    if not arguments.repo:
        raise EngineError("no repository: use --repo or DUMONT_SNAPSHOT_REPOSITORY")
    store = open_store(
        arguments.repo,
        endpoint_url=arguments.endpoint_url,
        token=os.environ.get("DUMONT_STORAGE_TOKEN") or None,
    )
    secret = read_secret(arguments)
    progress = None if arguments.quiet or arguments.json else print_progress
    if arguments.progress_jsonl:
        progress = print_progress_jsonl

    if arguments.command == "init":
        options = {"compression": arguments.compression}
        if arguments.average_chunk_bytes:
            options["average_chunk_bytes"] = arguments.average_chunk_bytes
        if arguments.pack_bytes:
            options["pack_bytes"] = arguments.pack_bytes
        repository = Repository.init(store, secret, **options)
        emit(arguments, {"id": repository.id}, f"created repository {repository.id}")
        return 0

    repository = Repository.open(store, secret)
    if arguments.command == "backup":
        parent = None if arguments.no_parent else arguments.parent
        info = repository.backup(
            arguments.path, parent=parent, progress=progress, tags=arguments.tag
        )
        if progress is print_progress:
            print(file=sys.stderr)
        emit(arguments, info.to_dict(), info.id)
    elif arguments.command == "restore":
        try:
            result = repository.restore(
                arguments.snapshot, arguments.target, paths=arguments.path, progress=progress
            )
        finally:
            if progress is print_progress:
                print(file=sys.stderr)
        emit(arguments, result, f"restored {result.files} files ({result.bytes} bytes)")
    elif arguments.command == "verify":
        report = repository.verify(read_data=arguments.read_data)
        emit(arguments, report, "\n".join(report.errors) if report.errors else "no errors")
        return 0 if report.is_ok else EXIT_DAMAGED
    elif arguments.command == "prune":
        policy = RetentionPolicy(arguments.keep_last, arguments.keep_daily, arguments.keep_weekly)
        options = {"collect_garbage": not arguments.no_gc}
        if arguments.grace_seconds is not None:
            options["grace_seconds"] = arguments.grace_seconds
        result = repository.prune(policy, **options)
        emit(
            arguments,
            result,
            f"kept {len(result.kept)}, forgot {len(result.forgotten)} snapshots; "
            + (
                "gc deferred: a backup is running"
                if result.gc_deferred
                else f"deleted {result.deleted_packs} packs ({result.deleted_bytes} bytes)"
            ),
        )
    elif arguments.command == "diff":
        result = repository.diff(arguments.first, arguments.second)
        lines = (
            [f"+ {path}" for path in result.added]
            + [f"- {path}" for path in result.removed]
            + [f"M {path}" for path in result.changed]
        )
        emit(arguments, result, "\n".join(lines))
    elif arguments.command == "snapshots":
        listed = repository.snapshots()
        lines = [
            f"{info.id[:12]}  {info.time[:19]}  {info.source}  "
            f"{info.summary.get('bytes', 0)} bytes  {','.join(info.tags)}"
            for info in listed
        ]
        emit(arguments, [info.to_dict() for info in listed], "\n".join(lines))
    elif arguments.command == "stats":
        stats = repository.stats()
        emit(
            arguments,
            stats,
            "\n".join(f"{name}: {value}" for name, value in dataclasses.asdict(stats).items()),
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        return run(arguments)
    except DamagedData as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_DAMAGED
    except EngineError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as error:  # process boundary: a file or network error, one line
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as error:
        # S3 errors (botocore: credentials, missing bucket, endpoint down) end up here too.
        if type(error).__module__.startswith(("botocore", "boto3")):
            print(f"error: {error}".replace("\n", " "), file=sys.stderr)
            return EXIT_ERROR
        raise
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
