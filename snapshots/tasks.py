"""Celery entry points of snapshots: each takes ids, reloads rows and calls a service.

Store errors (S3 unreachable, throttled) are retried with backoff; the services check status
first, so a retried or duplicated task does nothing twice.
"""

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.db.models import F

from instances.models import Instance
from snapshots import services
from snapshots.engine import EngineError
from snapshots.models import Snapshot, SnapshotRepository

logger = logging.getLogger(__name__)

STORE_RETRY = {
    "autoretry_for": (OSError, EngineError),
    "retry_backoff": 2,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 6,
}


@shared_task(**STORE_RETRY)
def start_snapshot(tenant_id: int, snapshot_id: str) -> None:
    """Create the tenant's repository if needed and hand the snapshot command to the agent."""
    if Snapshot.objects.for_tenant(tenant_id).filter(pk=snapshot_id).exists():
        services.start_snapshot(snapshot_id)


@shared_task(**STORE_RETRY)
def start_sync(tenant_id: int, instance_id: str) -> None:
    """Continuous sync for an instance that just started running."""
    if Instance.objects.for_tenant(tenant_id).filter(pk=instance_id).exists():
        services.start_sync(instance_id)


@shared_task(**STORE_RETRY)
def forget_snapshot(tenant_id: int, snapshot_id: str) -> None:
    """Remove a deleted snapshot from its repository."""
    if Snapshot.objects.for_tenant(tenant_id).filter(pk=snapshot_id).exists():
        services.forget_snapshot(snapshot_id)


@shared_task
def maintain_repositories() -> int:
    """Hourly: forget old syncs, collect garbage and re-measure every tenant's repository."""
    done = 0
    # Least recently maintained first: a run cut off by its time limit leaves the rest first
    # in line for the next one.
    repositories = SnapshotRepository.objects.order_by(F("measured_at").asc(nulls_first=True))
    for tenant_id in repositories.values_list("tenant_id", flat=True):
        try:
            services.maintain_repository(tenant_id)
            done += 1
        except SoftTimeLimitExceeded:
            raise  # the run is out of time: the next hourly run goes on where this one stopped
        except Exception:  # one tenant's broken store must not stop the others
            logger.exception("snapshot maintenance failed for tenant %s", tenant_id)
    return done
