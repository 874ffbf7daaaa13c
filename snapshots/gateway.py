"""The storage gateway (`/storage/v1/`): how machines read and add to their tenant's repository.

GPU machines and standbys are run by customers as root, so they never get the platform's store
keys. They get a short-lived `dst_` token (storage_tokens.py) and this gateway, modelled on
restic's rest-server with `--append-only`: a token reaches `tenant-<id>/` of the platform's store
and nothing else; objects can be created and read, never replaced or deleted, except the engine's
leases under `locks/` (a backup writes, refreshes and removes its own, as rest-server lets lock
files be removed). Forgetting snapshots and collecting garbage stay in the control plane, with
the platform's keys (repositories.py).

    GET    /storage/v1/?prefix=P&cursor=C&limit=N   {"objects": [{key, size, modified_at}],
                                                     "next_cursor": "..." or null}
    GET    /storage/v1/<key>       200; with `Range: bytes=a-b` (or `a-`) 206
    HEAD   /storage/v1/<key>       200 with Content-Length and Last-Modified, or 404
    PUT    /storage/v1/<key>       201 created; 412 `object_exists`. Under locks/ a put replaces,
                                   unless it sends `If-None-Match: *`
    DELETE /storage/v1/<key>       204 under locks/; 403 `append_only` anywhere else

Every request carries `Authorization: Bearer dst_...` (401 `invalid_token`). Keys are the
engine's (`config`, `data/ab/<pack>`, `index/<name>`, `snapshots/<id>`, `locks/<kind>-<id>`,
`keys/<name>`); anything else, `..` and empty segments included, is a 400 `invalid_key`.
"""

import bisect
import functools
import logging
import re
import tempfile
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from dumont.exceptions import DumontError
from snapshots import storage_tokens
from snapshots.engine.exceptions import EngineError, ObjectExists, ObjectNotFound
from snapshots.engine.store import LocalStore, S3Store, Store
from snapshots.exceptions import (
    AppendOnly,
    InvalidObjectKey,
    InvalidStorageToken,
    ObjectAlreadyExists,
)

logger = logging.getLogger(__name__)

AREAS = ("data", "index", "keys", "locks", "snapshots")
LEASES = "locks/"
_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")  # no "", ".", ".." or ".tmp-..."
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")
MAX_KEY_CHARACTERS = 512
MAX_LEASE_BYTES = 64 * 1024  # a lease is a few hundred bytes of JSON
LIST_PAGE_SIZE = 5000
# Request bodies are copied to a spooled file: packs (~32 MiB) go to disk past this, so an
# upload never holds more than this in memory, and its length is checked before it is stored.
SPOOL_MEMORY_BYTES = 1024 * 1024
READ_BYTES = 1024 * 1024
# Reads up to this size are answered in one piece; longer ones are streamed in pieces of it.
DIRECT_READ_BYTES = 16 * 1024 * 1024


class LengthRequired(DumontError):
    code = "length_required"
    status_code = 411
    default_detail = "A put needs a Content-Length."


class ObjectTooLarge(DumontError):
    code = "object_too_large"
    status_code = 413


class IncompleteBody(DumontError):
    code = "incomplete_body"
    default_detail = "The body ended before its Content-Length."


class RangeNotSatisfiable(DumontError):
    code = "range_not_satisfiable"
    status_code = 416
    default_detail = "The range starts past the end of the object."


class MethodNotAllowed(DumontError):
    code = "method_not_allowed"
    status_code = 405


class StorageUnavailable(DumontError):
    code = "storage_unavailable"
    status_code = 503
    default_detail = "The object store did not answer; try again."


class NotFound(DumontError):
    code = "not_found"
    status_code = 404
    default_detail = "No such object."


def object_key(key: str) -> str:
    """`key` if it names an object of a repository; InvalidObjectKey otherwise.

    The layout is the engine's exactly (formats.py): `data/<first two characters>/<name>`, one
    level under the other areas. So no object can take the place of a folder of keys (an object
    `data/ab` would make every later pack `data/ab/ab...` unstorable)."""
    area, *names = key.split("/")
    if key == "config":
        return key
    if (
        len(key) <= MAX_KEY_CHARACTERS
        and area in AREAS
        and all(_SEGMENT.fullmatch(name) for name in names)
        and (
            (area == "data" and len(names) == 2 and names[1][:2] == names[0] != names[1])
            or (area != "data" and len(names) == 1)
        )
    ):
        return key
    raise InvalidObjectKey(f"{key[:100]!r} is not an object key of a repository.")


def list_prefix(prefix: str) -> str:
    """A listing's prefix: empty, or an area then whole segments, the last maybe empty."""
    if not prefix:
        return prefix
    *whole, last = prefix.split("/")
    if (
        len(prefix) <= MAX_KEY_CHARACTERS
        and whole
        and whole[0] in AREAS
        and all(_SEGMENT.fullmatch(segment) for segment in whole[1:])
        and (last == "" or _SEGMENT.fullmatch(last))
    ):
        return prefix
    raise InvalidObjectKey(f"{prefix[:100]!r} is not a prefix of object keys.")


@functools.lru_cache(maxsize=4)
def _platform_store(url: str, endpoint_url: str, region: str, key_id: str, secret: str) -> Store:
    """The whole platform store, made once per process: an S3 client is costly to build."""
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://") :].partition("/")
        return S3Store(
            bucket,
            prefix,
            endpoint_url=endpoint_url or None,
            region_name=region or None,
            access_key_id=key_id or None,
            secret_access_key=secret or None,
        )
    return LocalStore(Path(url).resolve())


def platform_store() -> Store:
    """The store that holds every tenant's repository under `tenant-<id>/`, with the platform's
    keys (as repositories.location_for lays them out)."""
    return _platform_store(
        settings.SNAPSHOT_STORE_URL.rstrip("/"),
        settings.SNAPSHOT_S3_ENDPOINT_URL,
        settings.SNAPSHOT_S3_REGION,
        settings.SNAPSHOT_S3_ACCESS_KEY_ID,
        settings.SNAPSHOT_S3_SECRET_ACCESS_KEY,
    )


def _grant(request: HttpRequest) -> storage_tokens.Grant:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        raise InvalidStorageToken()
    grant = storage_tokens.verify(token.strip())
    if not storage_tokens.is_live(grant):
        raise InvalidStorageToken("This machine no longer has access: it was replaced or deleted.")
    return grant


@csrf_exempt
def storage_object(request: HttpRequest, key: str = "") -> HttpResponse:
    """One gateway request: authenticate, scope to the token's tenant, then the method."""
    try:
        grant = _grant(request)
        root = f"tenant-{grant.tenant_id}/"
        if not key:
            if request.method != "GET":
                raise MethodNotAllowed("The repository root only lists (GET ?prefix=).")
            return _list(root, request)
        key = object_key(key)
        handler = {
            "GET": _get,
            "HEAD": _head,
            "PUT": _put,
            "DELETE": _delete,
        }.get(request.method)
        if handler is None:
            raise MethodNotAllowed(f"{request.method} is not a method of the storage gateway.")
        return handler(root, key, request)
    except DumontError as error:
        return _error(error)
    except (OSError, BotoCoreError, ClientError, EngineError) as error:
        logger.warning("storage gateway %s %s: %s", request.method, request.path, error)
        return _error(StorageUnavailable())


def _error(error: DumontError) -> JsonResponse:
    response = JsonResponse({"code": error.code, "detail": error.detail}, status=error.status_code)
    if error.status_code == 401:
        response["WWW-Authenticate"] = 'Bearer realm="storage"'
    return response


def _list(root: str, request: HttpRequest) -> JsonResponse:
    # Sorted, so a cursor (the last key of a page) is a place in every later listing too.
    prefix = list_prefix(request.GET.get("prefix", ""))
    cursor = request.GET.get("cursor", "")
    try:
        limit = min(max(int(request.GET.get("limit", LIST_PAGE_SIZE)), 1), LIST_PAGE_SIZE)
    except ValueError:
        limit = LIST_PAGE_SIZE
    found = sorted(
        (item.key[len(root) :], item.size, item.modified_at)
        for item in platform_store().list(root + prefix)
    )
    start = bisect.bisect_right(found, (cursor, float("inf"))) if cursor else 0
    page = found[start : start + limit]
    more = start + limit < len(found)
    return JsonResponse(
        {
            "objects": [
                {"key": key, "size": size, "modified_at": modified_at}
                for key, size, modified_at in page
            ],
            "next_cursor": page[-1][0] if more else None,
        }
    )


def _get(root: str, key: str, request: HttpRequest) -> HttpResponse:
    store = platform_store()
    wanted = _RANGE.fullmatch(request.headers.get("Range", "").strip())
    start = int(wanted[1]) if wanted else 0
    end = int(wanted[2]) if wanted and wanted[2] else None  # inclusive
    if end is not None and end < start:
        raise RangeNotSatisfiable("The range ends before it starts.")
    if end is not None and end - start < DIRECT_READ_BYTES:
        # What restores ask for (at most ~8 MiB of a pack): one read, no size lookup first.
        try:
            data = store.get_range(root + key, start, end - start + 1)
        except ObjectNotFound:
            raise NotFound() from None
        if not data:
            raise RangeNotSatisfiable()
        response = _binary(data, 206)
        response["Content-Range"] = f"bytes {start}-{start + len(data) - 1}/*"
        return response
    # A whole object or a long range: streamed in pieces, so a reader never makes this
    # process hold an object (up to STORAGE_MAX_OBJECT_BYTES) in memory.
    found = store.stat(root + key)
    if found is None:
        raise NotFound()
    last = found.size - 1 if end is None else min(end, found.size - 1)
    if wanted and start > last:
        raise RangeNotSatisfiable()
    response = StreamingHttpResponse(
        _pieces(store, root + key, start, last),
        status=206 if wanted else 200,
        content_type="application/octet-stream",
    )
    response["Content-Length"] = str(last - start + 1)
    if wanted:
        response["Content-Range"] = f"bytes {start}-{last}/{found.size}"
    return response


def _pieces(store: Store, key: str, start: int, last: int) -> Iterator[bytes]:
    position = start
    while position <= last:
        data = store.get_range(key, position, min(DIRECT_READ_BYTES, last - position + 1))
        if not data:
            return  # shortened since the stat (it cannot be, objects never change): stop
        yield data
        position += len(data)


def _binary(data: bytes, status: int) -> HttpResponse:
    return HttpResponse(data, status=status, content_type="application/octet-stream")


def _head(root: str, key: str, request: HttpRequest) -> HttpResponse:
    found = platform_store().stat(root + key)
    if found is None:
        return HttpResponse(status=404)
    response = HttpResponse(status=200, content_type="application/octet-stream")
    # Set here, or CommonMiddleware would count the empty body.
    response["Content-Length"] = str(found.size)
    response["Last-Modified"] = formatdate(found.modified_at, usegmt=True)
    return response


def _put(root: str, key: str, request: HttpRequest) -> HttpResponse:
    is_lease = key.startswith(LEASES)
    declared = request.headers.get("Content-Length", "")
    if not declared.isdigit():
        raise LengthRequired()
    size = int(declared)
    largest = MAX_LEASE_BYTES if is_lease else settings.STORAGE_MAX_OBJECT_BYTES
    if size > largest:
        raise ObjectTooLarge(f"{size} bytes: objects here are at most {largest} bytes.")
    # Read from the request stream, never `request.body` (DATA_UPLOAD_MAX_MEMORY_SIZE is about
    # form posts: a pack would be refused, or held whole in memory).
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as body:
        left = size
        while left and (chunk := request.read(min(left, READ_BYTES))):
            body.write(chunk)
            left -= len(chunk)
        if left:
            raise IncompleteBody()  # a cut upload must not become a short object
        body.seek(0)
        store = platform_store()
        if is_lease and request.headers.get("If-None-Match", "").strip() != "*":
            store.put(root + key, body.read())
        else:
            try:
                store.put_new(root + key, body)
            except ObjectExists:
                raise ObjectAlreadyExists(f"{key} is already stored.") from None
    return HttpResponse(status=201)


def _delete(root: str, key: str, request: HttpRequest) -> HttpResponse:
    if not key.startswith(LEASES):
        raise AppendOnly()
    platform_store().delete(root + key)
    return HttpResponse(status=204)


urlpatterns = [
    path("", storage_object, name="storage-root"),
    path("<path:key>", storage_object, name="storage-object"),
]
