"""Where a repository's objects live: a local folder, an S3-compatible bucket, or the control
plane's storage gateway (what GPU machines and standbys use: snapshots/gateway.py).

Keys are `/`-separated names (`config`, `data/ab/<pack>`, `index/<pack>`, ...). Every `put`
is atomic: a reader sees the old object, the whole new one, or nothing. `put_new` creates an
object only if the key is free, atomically: of two writers, exactly one wins.
"""

import contextlib
import email.utils
import json
import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import quote, urlparse

from snapshots.engine.exceptions import EngineError, GatewayRefused, ObjectExists, ObjectNotFound


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


def _size(data: Data | BinaryIO) -> int:
    """Bytes in `data`; a file is measured from where it is to its end (and left there)."""
    if isinstance(data, list):
        return sum(map(len, data))
    if isinstance(data, bytes | bytearray | memoryview):
        return len(data)
    start = data.tell()
    end = data.seek(0, os.SEEK_END)
    data.seek(start)
    return end - start


class Store(Protocol):
    """The operations the engine needs from a store."""

    def put(self, key: str, data: Data) -> None: ...

    def put_new(self, key: str, data: Data | BinaryIO) -> None:
        """Create `key`; ObjectExists (and nothing written) when it is already there."""
        ...

    def stat(self, key: str) -> StoredObject | None: ...

    def get(self, key: str) -> bytes: ...

    def get_range(self, key: str, offset: int, length: int) -> bytes: ...

    def list(self, prefix: str) -> Iterator[StoredObject]: ...

    def delete(self, key: str) -> None: ...

    def exists(self, key: str) -> bool: ...


class LocalStore:
    """A folder; puts go to a temp file in the same folder, then `os.replace` (`os.link` for
    `put_new`, which fails when the name exists)."""

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
        temp_name = self._write_temp(path, data)
        try:
            os.replace(temp_name, path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise

    def put_new(self, key: str, data: Data | BinaryIO) -> None:
        """Create `key` from a finished temp file with `os.link`, which fails if the name
        exists: two creators never both win, and a reader never sees half an object."""
        path = self._path(key)
        temp_name = self._write_temp(path, data)
        try:
            os.link(temp_name, path)
        except FileExistsError:
            raise ObjectExists(f"{key}: already in {self.root}") from None
        finally:
            Path(temp_name).unlink(missing_ok=True)

    def _write_temp(self, path: Path, data: Data | BinaryIO) -> str:
        """A temp file beside `path` holding `data` (on disk, with fsync); returns its name."""
        if path.parent not in self._made_dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock:
                self._made_dirs.add(path.parent)
        fd, temp_name = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                if isinstance(data, list):
                    handle.writelines(data)
                elif isinstance(data, bytes | bytearray | memoryview):
                    handle.write(data)
                else:
                    shutil.copyfileobj(data, handle, 1024 * 1024)
                if self.fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        return temp_name

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

    def stat(self, key: str) -> StoredObject | None:
        try:
            info = self._path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISREG(info.st_mode):
            return None  # a folder of keys (`data/ab`), not an object
        return StoredObject(key, info.st_size, info.st_mtime)


class S3Store:
    """An S3-compatible bucket (AWS, MinIO, Backblaze B2, ...) under a key prefix."""

    # Packs above this size go up as a multipart upload with parts sent in parallel.
    multipart_threshold_bytes = 16 * 1024 * 1024
    # put_new sends one PutObject up to this size (S3 takes up to 5 GiB in one), streamed from
    # its file: the gateway's uploads then hold no part in memory. Above it, a multipart upload
    # whose completion carries the condition.
    single_put_max_bytes = 512 * 1024 * 1024
    part_bytes = 8 * 1024 * 1024

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

    def put_new(self, key: str, data: Data | BinaryIO) -> None:
        """Create `key` with `If-None-Match: *`, which S3 checks atomically: ObjectExists when
        it is there, or when another writer is creating it this instant (S3's 409). Stores
        that ignore the header (some older S3-compatible ones) would overwrite instead."""
        from botocore.exceptions import ClientError

        if isinstance(data, list | bytearray | memoryview):
            data = bytes(_joined(data))
        try:
            if _size(data) <= self.single_put_max_bytes:
                self.client.put_object(
                    Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*"
                )
            else:
                self._put_new_multipart(key, data)
        except ClientError as error:
            if _is_condition_failure(error):
                raise ObjectExists(f"{key}: already in {self!r}") from None
            raise

    def _put_new_multipart(self, key: str, data: bytes | BinaryIO) -> None:
        # boto3's managed upload_fileobj cannot pass IfNoneMatch to CompleteMultipartUpload
        # (s3transfer filters it out), so the parts go up here, one after another.
        import io

        from botocore.exceptions import ClientError

        source = io.BytesIO(data) if isinstance(data, bytes) else data
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=self._key(key))[
            "UploadId"
        ]
        try:
            parts = []
            while part := source.read(self.part_bytes):
                number = len(parts) + 1
                answer = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=self._key(key),
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=part,
                )
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self._key(key),
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                IfNoneMatch="*",
            )
        except BaseException:
            with contextlib.suppress(ClientError):  # the original error is the one to see
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self._key(key), UploadId=upload_id
                )
            raise

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
            code = error.response.get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404"):
                raise ObjectNotFound(f"{key}: no such object in {self!r}") from None
            if code == "InvalidRange":
                return b""  # past the end, as a folder's file read there gives
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

    def stat(self, key: str) -> StoredObject | None:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise
        return StoredObject(key, head["ContentLength"], head["LastModified"].timestamp())


def _is_condition_failure(error) -> bool:
    """A conditional write refused: the object exists (412), or a concurrent conditional
    write of the same key is in progress (409, which S3 asks to retry: by then it exists)."""
    code = error.response.get("Error", {}).get("Code")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412)


# What HttpStore calls before each request: the machine's current storage token; called with
# True after the gateway refused the last one (expired, or the machine was replaced): a new one.
TokenProvider = Callable[[bool], str]


class HttpStore:
    """A tenant's repository behind the control plane's storage gateway (`https://.../storage/
    v1/`, snapshots/gateway.py), with a short-lived machine token (`dst_...`).

    The gateway is append-only: `put` creates (ObjectExists when the key is taken) except under
    `locks/`, which may be replaced and deleted; other deletes are refused (GatewayRefused).
    Requests that fail on the network or with a 5xx / 429 are retried with backoff; a 401
    fetches a new token once. A put retried after its first attempt may have landed finds its
    object there: same size, it was ours.
    """

    attempts = 4
    list_page_size = 5000

    def __init__(
        self,
        url: str,
        token: str | TokenProvider,
        *,
        max_connections: int = 40,  # as S3Store: 8 upload threads and reads
        timeout_seconds: float = 120.0,
    ):
        import urllib3

        if not url.startswith(("http://", "https://")):
            raise EngineError(f"{url}: not an http(s) storage gateway address")
        self.url = url.rstrip("/") + "/"
        self._token = token if callable(token) else (lambda refresh: token)
        self.pool = urllib3.PoolManager(
            maxsize=max_connections,
            retries=False,  # retried here: a retried put must know it was retried
            timeout=urllib3.Timeout(connect=10.0, read=timeout_seconds),
        )

    def __repr__(self) -> str:
        return f"HttpStore({self.url!r})"

    def _request(self, method: str, key: str = "", *, body=None, headers=None, fields=None):
        """The gateway's response (body read) after retries: (response, attempts made)."""
        import urllib3

        url = self.url + quote(key, safe="/")
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            sent = {**(headers or {}), "Authorization": f"Bearer {self._token(False)}"}
            try:
                response = self.pool.request(
                    method, url, body=body, headers=sent, fields=fields, preload_content=True
                )
            except (urllib3.exceptions.HTTPError, OSError) as error:
                if attempt >= self.attempts:
                    raise EngineError(f"{key or 'listing'}: storage gateway: {error}") from None
                time.sleep(0.5 * 2**attempt)
                continue
            if response.status == 401 and not refreshed:
                refreshed = True
                self._token(True)
                continue
            if (response.status >= 500 or response.status == 429) and attempt < self.attempts:
                time.sleep(0.5 * 2**attempt)
                continue
            if response.status in (400, 401, 403, 405, 411, 413) or response.status >= 500:
                raise GatewayRefused(f"{key or 'listing'}: {_reason(response)}")
            return response, attempt

    def put(self, key: str, data: Data) -> None:
        self._put(key, data, {})

    def put_new(self, key: str, data: Data | BinaryIO) -> None:
        if not isinstance(data, bytes | bytearray | memoryview | list):
            data = data.read()
        self._put(key, data, {"If-None-Match": "*"})

    def _put(self, key: str, data: Data, headers: dict) -> None:
        body = data if isinstance(data, bytes) else bytes(_joined(data))
        response, attempts = self._request(
            "PUT",
            key,
            body=body,
            headers={**headers, "Content-Type": "application/octet-stream"},
        )
        if response.status == 412:
            if attempts > 1:
                # An attempt before may have stored it (its answer lost): then it is ours.
                found = self.stat(key)
                if found is not None and found.size == len(body):
                    return
            raise ObjectExists(f"{key}: already in {self!r}")
        if response.status not in (200, 201, 204):
            raise EngineError(f"{key}: storage gateway: {_reason(response)}")

    def get(self, key: str) -> bytes:
        response, _ = self._request("GET", key)
        if response.status == 404:
            raise ObjectNotFound(f"{key}: no such object in {self!r}")
        if response.status != 200:
            raise EngineError(f"{key}: storage gateway: {_reason(response)}")
        return response.data

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        response, _ = self._request(
            "GET", key, headers={"Range": f"bytes={offset}-{offset + length - 1}"}
        )
        if response.status == 404:
            raise ObjectNotFound(f"{key}: no such object in {self!r}")
        if response.status == 416:
            return b""  # past the end, as the other stores answer
        if response.status == 200:  # the whole object: the gateway ignored the range
            return response.data[offset : offset + length]
        if response.status != 206:
            raise EngineError(f"{key}: storage gateway: {_reason(response)}")
        return response.data

    def list(self, prefix: str) -> Iterator[StoredObject]:
        cursor = ""
        while True:
            fields = {"prefix": prefix, "limit": str(self.list_page_size)}
            if cursor:
                fields["cursor"] = cursor
            response, _ = self._request("GET", "", fields=fields)
            if response.status != 200:
                raise EngineError(f"listing {prefix!r}: storage gateway: {_reason(response)}")
            page = json.loads(response.data)
            for item in page["objects"]:
                yield StoredObject(item["key"], int(item["size"]), float(item["modified_at"]))
            cursor = page.get("next_cursor") or ""
            if not cursor:
                return

    def delete(self, key: str) -> None:
        response, _ = self._request("DELETE", key)
        if response.status not in (200, 204, 404):
            raise EngineError(f"{key}: storage gateway: {_reason(response)}")

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def stat(self, key: str) -> StoredObject | None:
        response, _ = self._request("HEAD", key)
        if response.status == 404:
            return None
        if response.status != 200:
            raise EngineError(f"{key}: storage gateway: HTTP {response.status}")
        modified = response.headers.get("Last-Modified")
        modified_at = email.utils.parsedate_to_datetime(modified).timestamp() if modified else 0
        return StoredObject(key, int(response.headers.get("Content-Length", 0)), modified_at)


def _reason(response) -> str:
    """The gateway's `{"code", "detail"}` as one line, else the HTTP status."""
    try:
        error = json.loads(response.data)
        return f"{error['detail']} ({error['code']}, HTTP {response.status})"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status}"


def open_store(
    location: str,
    *,
    endpoint_url: str | None = None,
    token: str | TokenProvider | None = None,
    **credentials: str,
) -> Store:
    """`https://.../storage/v1/` → HttpStore (`token`: the machine's storage token, or what
    gives it); `s3://bucket/prefix` → S3Store (`credentials`: S3Store's access_key_id,
    secret_access_key, region_name; by default the usual AWS variables); else a folder."""
    if location.startswith(("http://", "https://")):
        if not token:
            raise EngineError(f"{location}: a storage gateway needs a storage token")
        return HttpStore(location, token)
    if location.startswith("s3://"):
        parsed = urlparse(location)
        if not parsed.netloc:
            raise EngineError(f"{location}: no bucket in the S3 URL")
        return S3Store(
            parsed.netloc, parsed.path.lstrip("/"), endpoint_url=endpoint_url, **credentials
        )
    return LocalStore(location)
