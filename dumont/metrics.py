"""Prometheus metrics at GET /metrics (docs/PRODUCTION.md; OPERATIONS.md, "What to watch").

Two kinds, chosen by where the truth lives:
- What happens inside one process (HTTP requests and database queries from django-prometheus,
  Celery task runs here) is counted in that process by prometheus_client. Web, worker and beat
  are separate processes, so set PROMETHEUS_MULTIPROC_DIR (one empty folder per machine, shared
  by that machine's processes): each process writes its values there and /metrics on that
  machine adds them up.
- What the database already records (provisioning outcomes, failovers with their RPO and RTO,
  sync lag, webhook deliveries) is read from it at scrape time by `DatabaseCollector`: exact for
  the whole cluster whichever process or machine did the work, and kept across restarts. A
  scrape's cost must not grow with history: the provisioning and webhook-delivery counters, read
  from tables that keep growing, add the last hours to a checkpoint of the older ones kept in the
  cache.
"""

import hmac
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery.signals import task_failure, task_postrun, task_prerun, worker_process_shutdown
from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Q, QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from redis.exceptions import RedisError

TASK_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
PROVISIONING_BUCKETS = (5, 10, 20, 30, 60, 90, 120, 180, 300, 600, 1800)
RPO_BUCKETS = (5, 10, 15, 20, 30, 60, 120, 300, 600, 1800, 3600)
RTO_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
SYNC_LAG_BUCKETS = (1, 5, 10, 15, 20, 30, 60, 120, 300, 600, 1800)

task_runs = Counter(
    "dumont_celery_task_runs_total",
    "Celery task runs by task and final state (success, failure, retry, ...).",
    ["task", "state"],
)
task_failures = Counter(
    "dumont_celery_task_failures_total", "Celery task runs that raised, by task.", ["task"]
)
task_duration = Histogram(
    "dumont_celery_task_duration_seconds",
    "Wall time of a Celery task run, by task.",
    ["task"],
    buckets=TASK_DURATION_BUCKETS,
)

# Start of each running task, by task id (this process only, popped at postrun).
_started_at: dict[str, float] = {}


@task_prerun.connect(dispatch_uid="dumont.metrics.prerun")
def _task_started(task_id: str | None = None, **kwargs) -> None:
    if task_id is not None:
        _started_at[task_id] = time.monotonic()


@task_postrun.connect(dispatch_uid="dumont.metrics.postrun")
def _task_finished(task_id: str | None = None, task=None, state: str | None = None, **kwargs):
    started_at = _started_at.pop(task_id, None)
    if task is None:
        return
    task_runs.labels(task.name, (state or "unknown").lower()).inc()
    if started_at is not None:
        task_duration.labels(task.name).observe(time.monotonic() - started_at)


@task_failure.connect(dispatch_uid="dumont.metrics.failure")
def _task_failed(sender=None, **kwargs) -> None:
    if sender is not None:
        task_failures.labels(sender.name).inc()


@worker_process_shutdown.connect(dispatch_uid="dumont.metrics.process_shutdown")
def _forget_dead_process(pid: int | None = None, **kwargs) -> None:
    if pid is not None and settings.PROMETHEUS_MULTIPROC_DIR:
        multiprocess.mark_process_dead(pid, settings.PROMETHEUS_MULTIPROC_DIR)


# --- Read from the database at scrape time ---------------------------------------------------

PROVISIONING_OUTCOMES = {
    "running": "succeeded",
    "error": "failed",
    "pending": "retried",  # the offer was taken meanwhile: back to the market
    "deleting": "cancelled",
}


def _seconds(value) -> float:
    if value is None:
        return 0.0
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _histogram_counts(queryset, field: str, buckets, *, as_bound=float) -> dict:
    """Cumulative bucket counts, count and sum of `field` where it is set, in one query."""
    # Counting `field`, not the primary key, lets a covering index answer alone.
    aggregates = {
        f"le_{index}": Count(field, filter=Q(**{f"{field}__lte": as_bound(bound)}))
        for index, bound in enumerate(buckets)
    }
    row = queryset.filter(**{f"{field}__isnull": False}).aggregate(
        total=Count(field), sum=Sum(field), **aggregates
    )
    return {
        "buckets": [row[f"le_{index}"] for index in range(len(buckets))],
        "total": row["total"],
        "sum": _seconds(row["sum"]),
    }


def _histogram_family(name: str, documentation: str, buckets, counts: dict):
    cumulative = [
        (str(float(bound)), count) for bound, count in zip(buckets, counts["buckets"], strict=True)
    ]
    cumulative.append(("+Inf", counts["total"]))
    return HistogramMetricFamily(name, documentation, buckets=cumulative, sum_value=counts["sum"])


def _histogram(name: str, documentation: str, queryset, field: str, buckets, *, as_bound=float):
    """A histogram family from one aggregate query over `field` (rows where it is set)."""
    counts = _histogram_counts(queryset, field, buckets, as_bound=as_bound)
    return _histogram_family(name, documentation, buckets, counts)


# A counter over a history that only grows (events out of provisioning, deliveries that ended)
# counts every row since the beginning, but a scrape must not cost more as history grows. So the
# rows before the start of the hour before last are summed once into a checkpoint in the cache
# (shared by every process and machine, so all answer the same), and a scrape adds to it the rows
# since, through a partial index whose first column is the time the rows are keyed by. It holds
# for rows that never change once they count and that come to count (commit) within the margin
# of their time; the margin outlasts any transaction and any clock skew between machines, so a
# row older than the checkpoint's hour has committed before the checkpoint is summed. A lost
# checkpoint is summed again (rows deleted meanwhile with their tenant, or deliveries with their
# endpoint, drop out then, which Prometheus takes as a counter reset).
CHECKPOINT_MARGIN = timedelta(hours=1)
CHECKPOINT_TIMEOUT_SECONDS = 3 * 3600
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Checkpointed:
    """The totals of a growing history: the rows of `rows()`, each at the time in its `field`;
    `summed` counts some of them, `added` adds two such counts up."""

    name: str  # of its cache keys: one per history
    rows: Callable[[], QuerySet]
    field: str  # first in the partial index that serves `rows()` by time
    summed: Callable[[QuerySet], dict]
    added: Callable[[dict, dict], dict]

    def between(self, since: datetime | None, until: datetime | None) -> dict:
        """The counts of the rows in [since, until); None leaves that end open."""
        rows = self.rows()
        if since is not None:
            rows = rows.filter(**{f"{self.field}__gte": since})
        if until is not None:
            rows = rows.filter(**{f"{self.field}__lt": until})
        return self.summed(rows)

    def _key(self, hour: datetime) -> str:
        return f"metrics:{self.name}-before:{hour:%Y-%m-%dT%H}"

    def before(self, hour: datetime) -> dict:
        """`between(None, hour)`, from the cache when a scrape already summed it."""
        try:
            checkpoint = cache.get(self._key(hour))
            previous = None if checkpoint is not None else cache.get(self._key(hour - HOUR))
        except RedisError:  # metrics matter most when things break: count it all, uncached
            return self.between(None, hour)
        if checkpoint is not None:
            return checkpoint
        if previous is not None:  # the usual case once an hour: one more hour of rows
            checkpoint = self.added(previous, self.between(hour - HOUR, hour))
        else:  # first scrape, or the cache was emptied: the whole history, once
            checkpoint = self.between(None, hour)
        with suppress(RedisError):
            cache.set(self._key(hour), checkpoint, CHECKPOINT_TIMEOUT_SECONDS)
        return checkpoint

    def totals(self) -> dict:
        """Every row so far, at the cost of the last hour or two of them."""
        hour = (timezone.now() - CHECKPOINT_MARGIN).replace(minute=0, second=0, microsecond=0)
        return self.added(self.before(hour), self.between(hour, None))


def _counts_added(first: dict, second: dict) -> dict:
    return {key: first.get(key, 0) + second.get(key, 0) for key in first.keys() | second.keys()}


def _provisioning_exits() -> QuerySet:
    """The events out of provisioning (the partial index event_provisioning_exit)."""
    from instances.models import Instance, InstanceEvent

    return InstanceEvent.objects.filter(from_status=Instance.Status.PROVISIONING)


def _provisioning_summed(events: QuerySet) -> dict:
    """Outcome counts and duration histogram of these events out of provisioning."""
    from instances.models import Instance

    outcomes = dict(events.values_list("to_status").annotate(count=Count("*")).order_by())
    # What the customer waited: the request (instance created) → its first `running`.
    provisioned = events.filter(to_status=Instance.Status.RUNNING).annotate(
        duration=ExpressionWrapper(
            F("created_at") - F("instance__created_at"), output_field=DurationField()
        )
    )
    durations = _histogram_counts(
        provisioned,
        "duration",
        PROVISIONING_BUCKETS,
        as_bound=lambda bound: timedelta(seconds=bound),
    )
    return {"outcomes": outcomes, "durations": durations}


def _provisioning_added(first: dict, second: dict) -> dict:
    one, other = first["durations"], second["durations"]
    durations = {
        "buckets": [a + b for a, b in zip(one["buckets"], other["buckets"], strict=True)],
        "total": one["total"] + other["total"],
        "sum": one["sum"] + other["sum"],
    }
    return {
        "outcomes": _counts_added(first["outcomes"], second["outcomes"]),
        "durations": durations,
    }


# Events are never updated, and each is written with its created_at in transition()'s transaction.
PROVISIONING = Checkpointed(
    "provisioning", _provisioning_exits, "created_at", _provisioning_summed, _provisioning_added
)


def _finished_deliveries() -> QuerySet:
    """Deliveries that ended, succeeded or failed (index-only on webhook_delivery_finished)."""
    from webhooks.models import WebhookDelivery

    return WebhookDelivery.objects.exclude(status=WebhookDelivery.Status.PENDING)


def _by_status(deliveries: QuerySet) -> dict:
    return dict(deliveries.values_list("status").annotate(count=Count("*")).order_by())


# A delivery ends in an attempt, which its claim started by setting last_attempt_at (a check
# constraint holds every finished row to it); the outcome is written within the attempt's
# timeouts, seconds later. An attempt that outlives its 2-minute lease is claimed again by the
# sweep and its late write fenced out, so only a worker stalled past the margin while beat's sweep
# is down too could end a delivery already left out of a checkpoint (counted at the next recount).
# A delivery that ended is never written again; a redelivery is a new row.
WEBHOOK_DELIVERIES = Checkpointed(
    "webhook-deliveries", _finished_deliveries, "last_attempt_at", _by_status, _counts_added
)


class DatabaseCollector:
    """State the database holds, read when Prometheus scrapes (a few aggregate queries)."""

    def collect(self):
        from instances.models import Failover, Instance
        from webhooks.models import WebhookDelivery

        provisioning = PROVISIONING.totals()
        outcomes = CounterMetricFamily(
            "dumont_provisioning_outcomes",
            "Provisioning attempts by how they ended (succeeded, failed, retried, cancelled).",
            labels=["outcome"],
        )
        for status, outcome in PROVISIONING_OUTCOMES.items():
            outcomes.add_metric([outcome], provisioning["outcomes"].get(status, 0))
        yield outcomes
        yield _histogram_family(
            "dumont_provisioning_duration_seconds",
            "Seconds from an instance's creation to its first running.",
            PROVISIONING_BUCKETS,
            provisioning["durations"],
        )

        failovers = CounterMetricFamily(
            "dumont_failovers",
            "Failovers by status (in_progress, completed, failed).",
            labels=["status"],
        )
        by_status = dict(
            Failover.objects.values_list("status").annotate(count=Count("pk")).order_by()
        )
        for status in Failover.Status.values:
            failovers.add_metric([status], by_status.get(status, 0))
        yield failovers
        yield _histogram(
            "dumont_failover_rpo_seconds",
            "Age of the newest sync when the GPU was lost: work after it is gone.",
            Failover.objects.all(),
            "rpo_seconds",
            RPO_BUCKETS,
        )
        yield _histogram(
            "dumont_failover_rto_standby_seconds",
            "Interruption → the CPU standby serving.",
            Failover.objects.all(),
            "rto_standby_seconds",
            RTO_BUCKETS,
        )
        yield _histogram(
            "dumont_failover_rto_gpu_seconds",
            "Interruption → a GPU serving again.",
            Failover.objects.all(),
            "rto_gpu_seconds",
            RTO_BUCKETS,
        )

        running = Instance.objects.filter(status=Instance.Status.RUNNING)
        yield _histogram(
            "dumont_sync_lag_seconds",
            "Running instances by the sync lag their agent last reported.",
            running,
            "sync_lag_seconds",
            SYNC_LAG_BUCKETS,
        )
        worst = GaugeMetricFamily(
            "dumont_sync_lag_max_seconds", "The largest sync lag of a running instance."
        )
        worst.add_metric([], running.aggregate(worst=Max("sync_lag_seconds"))["worst"] or 0.0)
        yield worst

        instances = GaugeMetricFamily("dumont_instances", "Instances by status.", labels=["status"])
        counts = dict(Instance.objects.values_list("status").annotate(count=Count("pk")).order_by())
        for status in Instance.Status.values:
            instances.add_metric([status], counts.get(status, 0))
        yield instances

        deliveries = WEBHOOK_DELIVERIES.totals()
        finished = CounterMetricFamily(
            "dumont_webhook_deliveries",
            "Webhook deliveries that ended: succeeded, or failed after every retry.",
            labels=["outcome"],
        )
        for status in (WebhookDelivery.Status.SUCCEEDED, WebhookDelivery.Status.FAILED):
            finished.add_metric([status], deliveries.get(status, 0))
        yield finished
        pending = GaugeMetricFamily(
            "dumont_webhook_deliveries_pending", "Webhook deliveries still being attempted."
        )
        # Index-only on webhook_delivery_due (status first): as many rows as are pending.
        waiting = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING).count()
        pending.add_metric([], waiting)
        yield pending


_database_registry = CollectorRegistry(auto_describe=False)
_database_registry.register(DatabaseCollector())


def _process_registry():
    if settings.PROMETHEUS_MULTIPROC_DIR:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=settings.PROMETHEUS_MULTIPROC_DIR)
        return registry
    return REGISTRY


def _is_allowed(request: HttpRequest) -> bool | None:
    """True: allowed; False: known but not allowed (403); None: no credentials (401)."""
    token = settings.METRICS_TOKEN
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and credentials:
        if hmac.compare_digest(credentials.encode(), token.encode()):
            return True
        return None
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return bool(user.is_staff)
    return None


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET /metrics: the bearer METRICS_TOKEN, or a signed-in staff member."""
    allowed = _is_allowed(request)
    if allowed is None:
        response = HttpResponse("authentication required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if not allowed:
        return HttpResponse("staff only\n", status=403, content_type="text/plain")
    body = generate_latest(_process_registry()) + generate_latest(_database_registry)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
