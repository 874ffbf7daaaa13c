"""Checks behind the health endpoints.

GET /api/health: database, broker, a worker and beat (the whole system).
GET /api/health/ready: database and broker (this web process can serve requests).
GET /api/health/live: no check at all (this process answers).
"""

import logging
import time
from dataclasses import dataclass

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.db import connection

logger = logging.getLogger(__name__)

WORKER_KEY = "health:worker-seen-at"
BEAT_KEY = "health:beat-seen-at"


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str

    def as_json(self) -> dict:
        return {"status": "ok" if self.ok else "failing", "detail": self.detail}


def record_beat_liveness() -> None:
    """Called by the beat scheduler on every tick."""
    try:
        cache.set(BEAT_KEY, time.time(), timeout=None)
    except Exception:  # process boundary: a cache outage must not stop beat sending tasks
        logger.warning("could not record beat liveness", exc_info=True)


@shared_task(name="dumont.health.record_worker_liveness", ignore_result=True)
def record_worker_liveness() -> None:
    """Periodic task sent by beat; running it proves a worker consumes the queue."""
    cache.set(WORKER_KEY, time.time(), timeout=None)


def check_database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:  # any driver error means the database does not answer
        return Check(False, f"database unreachable: {type(error).__name__}")
    return Check(True, connection.vendor)


def check_broker() -> Check:
    from dumont.celery import app

    try:
        with app.connection_for_write() as broker:
            broker.ensure_connection(max_retries=1, timeout=2)
    except Exception as error:  # kombu raises transport-specific errors
        return Check(False, f"broker unreachable: {type(error).__name__}")
    return Check(True, "connected")


def _check_recent(key: str, what: str) -> Check:
    try:
        seen_at = cache.get(key)
    except Exception as error:  # the cache is the same Redis as the broker
        return Check(False, f"cannot read {what} liveness: {type(error).__name__}")
    if seen_at is None:
        return Check(False, f"no {what} has run yet")
    age_seconds = time.time() - seen_at
    if age_seconds > settings.LIVENESS_MAX_AGE_SECONDS:
        return Check(False, f"{what} last seen {age_seconds:.0f}s ago")
    return Check(True, f"seen {age_seconds:.0f}s ago")


def run_checks() -> dict[str, Check]:
    """Every check, by name; all must be ok for the system to be healthy."""
    return {
        "database": check_database(),
        "broker": check_broker(),
        "worker": _check_recent(WORKER_KEY, "worker"),
        "beat": _check_recent(BEAT_KEY, "beat"),
    }


def run_readiness_checks() -> dict[str, Check]:
    """What a web process needs to serve requests: the database and the broker (tasks queue)."""
    return {"database": check_database(), "broker": check_broker()}
