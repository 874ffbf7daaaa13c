"""Where a repository's objects live: a local folder or an S3-compatible bucket.

Keys are `/`-separated names (`config`, `data/ab/<pack>`, `index/<pack>`, ...). Every `put`
is atomic: a reader sees the old object, the whole new one, or nothing.
"""

import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from snapshots.engine.exceptions import EngineError, ObjectNotFound


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified_at: float  # unix seconds, as the store reports it


# What `put` takes: bytes, or a list of byte strings stored back to back (a pack's blobs, so
# that a 32 MiB pack is never copied into one buffer just to be written).
Data = bytes | bytearray | memoryview | list[bytes]


def _joined(data: Data) -> bytes | bytearray | memoryview:
    return b"".join(data) if isinstance(data, list) else data


class Store(Protocol):
    """The six operations the engine needs from a store."""

    def put(self, key: str, data: Data) -> None: ...

    def get(self, key: str) -> bytes: ...

    def get_range(self, key: str, offset: int, length: int) -> bytes: ...

    def list(self, prefix: str) -> Iterator[StoredObject]: ...

    def delete(self, key: str) -> None: ...

    def exists(self, key: str) -> bool: ...


class LocalStore:
    """A folder; puts go to a temp file in the same folder, then `os.replace`."""

    def __init__(self, root: str | os.PathLike, *, fsync: bool = True):
        self.root = Path(root)
        self.fsync = fsync
        self._made_dirs: set[Path] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise EngineError(f"invalid object key {key!r}")
        return self.root / key

    def put(self, key: str, data: Data) -> None:
        """Write atomically: a crash leaves the old object or none, never half of one."""
        path = self._path(key)
        if path.parent not in self._made_dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock:
                self._made_dirs.add(path.parent)
        fd, temp_name = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                if isinstance(data, list):
                    handle.writelines(data)
                else:
                    handle.write(data)
                if self.fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(temp_name, path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(f"{key}: no such object in {self.root}") from None

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        try:
            with open(self._path(key), "rb") as handle:
                handle.seek(offset)
                return handle.read(length)
        except FileNotFoundError:
            raise ObjectNotFound(f"{key}: no such object in {self.root}") from None

    def list(self, prefix: str) -> Iterator[StoredObject]:
        base = self._path(prefix.rstrip("/")) if prefix else self.root
        if not base.is_dir():
            return
        for directory, _dirs, files in os.walk(base):
            for name in files:
                if name.startswith(".tmp-"):
                    continue  # a put in progress (or one a crash interrupted)
                path = Path(directory, name)
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue  # deleted while we listed
                key = path.relative_to(self.root).as_posix()
                yield StoredObject(key, stat.st_size, stat.st_mtime)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


class S3Store:
    """An S3-compatible bucket (AWS, MinIO, Backblaze B2, ...) under a key prefix."""

    # Packs above this size go up as a multipart upload with parts sent in parallel.
    multipart_threshold_bytes = 16 * 1024 * 1024

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        max_connections: int = 40,  # 8 upload threads x 4 multipart parts, plus reads
    ):
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region_name or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
            config=Config(
                max_pool_connections=max_connections,
                retries={"max_attempts": 5, "mode": "standard"},
            ),
        )
        self.transfer_config = TransferConfig(
            multipart_threshold=self.multipart_threshold_bytes,
            multipart_chunksize=8 * 1024 * 1024,
            max_concurrency=4,
        )

    def __repr__(self) -> str:
        return f"S3Store(s3://{self.bucket}/{self.prefix})"

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: Data) -> None:
        import io

        data = _joined(data)
        if len(data) >= self.multipart_threshold_bytes:
            self.client.upload_fileobj(
                io.BytesIO(data), self.bucket, self._key(key), Config=self.transfer_config
            )
        else:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get(self, key: str) -> bytes:
        return self._get(key, None)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return self._get(key, f"bytes={offset}-{offset + length - 1}")

    def _get(self, key: str, byte_range: str | None) -> bytes:
        from botocore.exceptions import ClientError

        arguments = {"Bucket": self.bucket, "Key": self._key(key)}
        if byte_range:
            arguments["Range"] = byte_range
        try:
            return self.client.get_object(**arguments)["Body"].read()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise ObjectNotFound(f"{key}: no such object in {self!r}") from None
            raise

    def list(self, prefix: str) -> Iterator[StoredObject]:
        paginator = self.client.get_paginator("list_objects_v2")
        full_prefix = self._key(prefix)
        cut = len(self.prefix) + 1 if self.prefix else 0
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full_prefix):
            for item in page.get("Contents", []):
                yield StoredObject(
                    item["Key"][cut:], item["Size"], item["LastModified"].timestamp()
                )

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return False
            raise
        return True


def open_store(location: str, *, endpoint_url: str | None = None, **credentials: str) -> Store:
    """`s3://bucket/prefix` → S3Store (`credentials`: S3Store's access_key_id, secret_access_key,
    region_name; by default the usual AWS variables); else a folder."""
    if location.startswith("s3://"):
        parsed = urlparse(location)
        if not parsed.netloc:
            raise EngineError(f"{location}: no bucket in the S3 URL")
        return S3Store(
            parsed.netloc, parsed.path.lstrip("/"), endpoint_url=endpoint_url, **credentials
        )
    return LocalStore(location)
