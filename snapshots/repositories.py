"""Each tenant's snapshot repository: where it is, its secret, and how to open it.

The secret of a tenant's repository is HMAC-SHA256(SNAPSHOT_MASTER_KEY, "tenant:<id>"): the
platform can open every repository, and an agent receives only its own tenant's secret (a
machine that leaks it exposes that tenant's snapshots, never another's), with a storage token
that lets it read and add to that repository only (storage_tokens.py, gateway.py). The engine
derives the key that wraps the repository's random data keys from this secret
(snapshots/engine/crypto).
"""

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from snapshots.engine import Repository, RepositoryNotFound, formats, maintenance, open_store
from snapshots.engine.exceptions import WrongKey
from snapshots.engine.repository import DEFAULT_GRACE_SECONDS
from snapshots.engine.store import S3Store, Store
from snapshots.models import SnapshotRepository

# The secret is 256 random-looking bits, so a costly KDF buys nothing; agents open the
# repository every sync cycle.
KDF_COST = 2**10


@dataclass(frozen=True)
class RepositoryAccess:
    """How the control plane opens one tenant's repository: with the platform's store keys,
    which never leave it (machines go through the storage gateway: gateway.py)."""

    location: str
    secret: str
    endpoint_url: str = ""
    region: str = ""
    access_key_id: str = ""
    secret_access_key: str = ""


def secret_for(tenant_id: int, master_key: str | None = None) -> str:
    key = (master_key or settings.SNAPSHOT_MASTER_KEY).encode()
    return hmac.new(key, f"tenant:{tenant_id}".encode(), hashlib.sha256).hexdigest()


def location_for(tenant_id: int) -> str:
    base = settings.SNAPSHOT_STORE_URL.rstrip("/")
    if not base.startswith("s3://"):
        base = str(Path(base).resolve())  # the worker and web may run in other folders
    return f"{base}/tenant-{tenant_id}"


def access_for(tenant_id: int) -> RepositoryAccess:
    return RepositoryAccess(
        location=location_for(tenant_id),
        secret=secret_for(tenant_id),
        endpoint_url=settings.SNAPSHOT_S3_ENDPOINT_URL,
        region=settings.SNAPSHOT_S3_REGION,
        access_key_id=settings.SNAPSHOT_S3_ACCESS_KEY_ID,
        secret_access_key=settings.SNAPSHOT_S3_SECRET_ACCESS_KEY,
    )


def _store(access: RepositoryAccess) -> Store:
    if access.location.startswith("s3://"):
        bucket, _, prefix = access.location[len("s3://") :].partition("/")
        return S3Store(
            bucket,
            prefix,
            endpoint_url=access.endpoint_url or None,
            region_name=access.region or None,
            access_key_id=access.access_key_id or None,
            secret_access_key=access.secret_access_key or None,
        )
    return open_store(access.location)


def open_repository(tenant_id: int, *, create: bool = False) -> Repository:
    """The tenant's engine repository; with `create`, made on first use."""
    access = access_for(tenant_id)
    store = _store(access)
    try:
        return Repository.open(store, access.secret)
    except RepositoryNotFound:
        if not create:
            raise
    except WrongKey:
        # During a rotation (OPERATIONS.md): not re-wrapped yet, still under the previous key.
        previous = settings.SNAPSHOT_MASTER_KEY_PREVIOUS
        if not previous:
            raise
        return Repository.open(store, secret_for(tenant_id, previous))
    return Repository.init(store, access.secret, kdf_cost=KDF_COST)


def rewrap_repository(tenant_id: int) -> bool:
    """Put the tenant's repository under the current SNAPSHOT_MASTER_KEY, if it is still under
    SNAPSHOT_MASTER_KEY_PREVIOUS. True when it was re-wrapped now; safe to run again."""
    store = _store(access_for(tenant_id))
    try:
        Repository.open(store, secret_for(tenant_id))
        return False
    except WrongKey:
        if not settings.SNAPSHOT_MASTER_KEY_PREVIOUS:
            raise
    repository = Repository.open(
        store, secret_for(tenant_id, settings.SNAPSHOT_MASTER_KEY_PREVIOUS)
    )
    repository.rewrap(secret_for(tenant_id))
    return True


def ensure_repository(tenant_id: int) -> SnapshotRepository:
    """The tenant's repository row, and the repository itself in the store.

    Creation happens under the row's lock: two first snapshots at once must not both write a
    config (the second would wrap different keys and orphan what the first stored)."""
    SnapshotRepository.objects.get_or_create(
        tenant_id=tenant_id, defaults={"location": location_for(tenant_id)}
    )
    with transaction.atomic():
        row = SnapshotRepository.objects.select_for_update().get(tenant_id=tenant_id)
        open_repository(tenant_id, create=True)
    return row


def measure(tenant_id: int) -> int:
    """Re-read the repository's size (bytes in the store) and record it; returns it (0 when
    the repository is not there)."""
    try:
        stored = open_repository(tenant_id).stats().stored_bytes
    except RepositoryNotFound:
        stored = 0
    SnapshotRepository.objects.filter(tenant_id=tenant_id).update(
        stored_bytes=stored, measured_at=timezone.now()
    )
    return stored


def forget(tenant_id: int, snapshot_ids: list[str], *, now: datetime | None = None) -> None:
    """Forget engine snapshots, then collect the data nothing references any more.

    Collection keeps packs younger than the engine's grace period and waits while a backup
    holds its lease (snapshots/engine/maintenance.py), so an agent syncing meanwhile loses
    nothing; what is left goes at the next maintenance. Without a repository there is nothing
    to forget.
    """
    try:
        repository = open_repository(tenant_id)
    except RepositoryNotFound:
        return
    known = set(repository.snapshot_ids())
    for snapshot_id in snapshot_ids:
        if snapshot_id in known:
            repository.store.delete(formats.snapshot_key(snapshot_id))
    repository.invalidate()
    result = maintenance.PruneResult(kept=[], forgotten=list(snapshot_ids))
    maintenance.collect(repository, result, DEFAULT_GRACE_SECONDS, now or datetime.now(tz=UTC))


def forget_old_syncs(
    tenant_id: int, sync_tag: str, live_instances: set[str], *, keep: int, now=None
) -> int:
    """Forget sync snapshots beyond the newest `keep` per live instance, and every sync of an
    instance that is gone. Snapshots customers took are never touched. Returns how many."""
    try:
        repository = open_repository(tenant_id)
    except RepositoryNotFound:
        return 0
    syncs: dict[str, list] = {}
    for info in repository.snapshots():
        if sync_tag not in info.tags:
            continue
        owner = next((tag.split(":", 1)[1] for tag in info.tags if tag.startswith("instance:")), "")
        syncs.setdefault(owner, []).append(info)
    doomed = []
    for owner, infos in syncs.items():
        newest_first = sorted(infos, key=lambda info: info.time, reverse=True)
        kept = keep if owner in live_instances else 0
        doomed += [info.id for info in newest_first[kept:]]
    forget(tenant_id, doomed, now=now)
    return len(doomed)
