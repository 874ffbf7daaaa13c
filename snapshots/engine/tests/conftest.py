"""Fixtures of the engine tests: small chunk and pack sizes, a workspace, a real S3 server."""

import hashlib
import os
import random
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from snapshots.engine import LocalStore, Repository, S3Store

SECRET = "correct horse battery staple"
# Small sizes keep the tests fast while still giving many chunks and packs per backup.
REPOSITORY_OPTIONS = {"average_chunk_bytes": 16 * 1024, "pack_bytes": 128 * 1024, "kdf_cost": 2**10}


def write_random(path: Path, size: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(random.Random(seed).randbytes(size))


def make_workspace(root: Path) -> Path:
    """Files big and small, unicode names, a symlink, empty files and dirs, odd modes."""
    write_random(root / "checkpoints" / "model.bin", 600_000, seed=1)
    write_random(root / "data" / "part-0.bin", 200_000, seed=2)
    write_random(root / "data" / "part-1.bin", 150_000, seed=3)
    (root / "notes").mkdir()
    for number in range(20):
        (root / "notes" / f"note-{number}.txt").write_text(f"note {number}\n" * (number + 1))
    (root / "ünïcødé 日本").mkdir()
    (root / "ünïcødé 日本" / "naïve café.txt").write_text("crème brûlée\n")
    (root / "empty-dir" / "nested-empty").mkdir(parents=True)
    (root / "empty-file").touch()
    (root / "link-to-model").symlink_to("checkpoints/model.bin")
    (root / "dangling-link").symlink_to("does/not/exist")
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(root / "run.sh", 0o755)
    os.chmod(root / "data" / "part-1.bin", 0o600)
    os.chmod(root / "notes", 0o750)
    return root


def tree_digest(root: Path) -> str:
    """A hash of everything restore must reproduce: names, types, modes, mtimes, contents."""
    digest = hashlib.sha256()
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            path = Path(directory, name)
            info = path.lstat()
            relative = path.relative_to(root).as_posix()
            digest.update(f"{relative}|{info.st_mode:o}|".encode())
            if path.is_symlink():
                digest.update(f"-> {os.readlink(path)}|{info.st_mtime_ns}".encode())
            elif path.is_file():
                digest.update(f"{info.st_mtime_ns}|".encode() + path.read_bytes())
            else:
                digest.update(f"{info.st_mtime_ns}".encode())
    return digest.hexdigest()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "workspace")


@pytest.fixture
def local_store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "repository", fsync=False)


@pytest.fixture
def repository(local_store: LocalStore) -> Repository:
    return Repository.init(local_store, SECRET, **REPOSITORY_OPTIONS)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint():
    """A real moto S3 server on a loopback port, for the whole session."""
    port = _free_port()
    environment = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=environment,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def s3_store(moto_endpoint: str) -> S3Store:
    store = S3Store(
        f"bucket-{secrets.token_hex(4)}",
        "team-42/workspace",
        endpoint_url=moto_endpoint,
        access_key_id="test",
        secret_access_key="test",
    )
    store.client.create_bucket(Bucket=store.bucket)
    return store
