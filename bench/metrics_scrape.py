"""The database half of a /metrics scrape with a long instance history on Postgres.

Builds database `dumont_metrics_bench` (dropped first; `--reuse` keeps one already built): 500
tenants and instances whose lives are written as InstanceEvents the way `transition()` writes
them, spread over 12 months, until there are `--events` events: created → pending →
provisioning, sometimes back to pending (offer lost) or to error, then running with hibernate /
wake cycles and the odd failover (with its Failover row), and most of them deleted in the end.
A third of the tenants have a webhook endpoint, with one delivery per event of theirs.

Then it migrates (so `--reuse` after a branch switch applies that branch's indexes), runs
VACUUM ANALYZE (InstanceEvent is insert-only: autovacuum keeps it all-visible the same way),
times `DatabaseCollector` as /metrics runs it: once on an empty cache (a cache key prefix of its
own), then `--runs` times, and prints the query count, the median, the slowest queries of the
last run and the plans of its queries on InstanceEvent and WebhookDelivery.
Run (Postgres on this machine, as for `make test`):
    .venv/bin/python bench/metrics_scrape.py [--events 200000] [--runs 9] [--reuse]
"""

import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "dumont_metrics_bench"
PSQL = ["-h", "127.0.0.1", "-U", "postgres"]
os.environ.update(
    DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{DATABASE}",
    REDIS_URL=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9"),
    # A cache of its own for each run: the first scrape finds no provisioning checkpoint.
    CACHE_KEY_PREFIX=f"metrics-bench-{os.getpid()}",
    SECRET_KEY="bench-only",
    DUMONT_HOME=str(ROOT / "var" / "bench"),
    DJANGO_SETTINGS_MODULE="dumont.settings",
    LOG_LEVEL="WARNING",
)
sys.path.insert(0, str(ROOT))

TENANTS = 500
BATCH = 5000


def lifecycle(rng: random.Random, created_at):
    """(from_status, to_status, at, reason) of one instance, as transition() records them."""
    from instances.models import Instance

    status = Instance.Status
    at = created_at
    steps = [("", status.PENDING, at, "created")]

    def move(to_status, seconds, reason):
        nonlocal at
        at = at + timedelta(seconds=seconds)
        steps.append((steps[-1][1], to_status, at, reason))

    move(status.PROVISIONING, rng.uniform(0.2, 2), "looking for an offer")
    while rng.random() < 0.06:  # the offer was taken meanwhile
        move(status.PENDING, rng.uniform(5, 40), "offer taken; back to the market")
        move(status.PROVISIONING, rng.uniform(0.2, 2), "looking for an offer")
    if rng.random() < 0.02:
        move(status.ERROR, rng.uniform(30, 600), "no offer under the maximum price any more")
        if rng.random() < 0.5:
            move(status.DELETING, rng.uniform(600, 86400), "delete")
            move(status.DELETED, rng.uniform(2, 30), "machine destroyed")
        return steps
    move(status.RUNNING, rng.lognormvariate(4.5, 0.6), "agent heartbeat")
    for _ in range(int(rng.expovariate(1 / 3))):
        if rng.random() < 0.08:
            move(status.FAILING_OVER, rng.uniform(600, 86400), "spot interrupted")
            move(status.ON_STANDBY, rng.uniform(5, 60), "standby serving")
            move(status.RECOVERING, rng.uniform(1, 30), "new GPU provisioning")
            move(status.RUNNING, rng.uniform(60, 300), "restored from the latest sync")
        else:
            move(status.HIBERNATING, rng.uniform(600, 86400), "idle")
            move(status.HIBERNATED, rng.uniform(5, 60), "final sync done; GPU machine released")
            move(status.WAKING, rng.uniform(600, 86400 * 3), "wake")
            move(status.RUNNING, rng.uniform(60, 300), "agent heartbeat")
    if rng.random() < 0.7:
        move(status.DELETING, rng.uniform(600, 86400 * 7), "delete")
        move(status.DELETED, rng.uniform(2, 30), "machine destroyed")
    return steps


def build(event_target: int) -> None:
    """Write tenants, instances and their events (and failovers, deliveries) until the target."""
    from django.db import connection
    from django.utils import timezone

    from accounts.models import Tenant
    from instances.models import Failover, Instance, InstanceEvent, new_instance_id
    from webhooks.models import WebhookDelivery, WebhookEndpoint

    rng = random.Random(42)
    now = timezone.now()
    tenants = Tenant.objects.bulk_create(Tenant(name=f"bench-{n}") for n in range(TENANTS))
    endpoints = {
        endpoint.tenant_id: endpoint
        for endpoint in WebhookEndpoint.objects.bulk_create(
            WebhookEndpoint(tenant=tenant, url="https://hooks.example.com/x", events=["*"])
            for tenant in tenants[::3]
        )
    }
    written = 0
    instances, events, failovers, deliveries = [], [], [], []
    created_at_of = {}

    def flush() -> None:
        Instance.objects.bulk_create(instances)
        InstanceEvent.objects.bulk_create(events, batch_size=BATCH)
        Failover.objects.bulk_create(failovers, batch_size=BATCH)
        WebhookDelivery.objects.bulk_create(deliveries, batch_size=BATCH)
        for rows in (instances, events, failovers, deliveries):
            rows.clear()

    number = 0
    while written < event_target:
        tenant = tenants[rng.randrange(TENANTS)]
        created_at = now - timedelta(days=365 * rng.random() ** 1.5)
        steps = [step for step in lifecycle(rng, created_at) if step[2] < now]
        instance = Instance(
            id=new_instance_id(),
            tenant=tenant,
            name=f"box-{number}",
            gpu="RTX 4090",
            region="US-East",
            max_price_micros=500_000,
            provision_key=f"k{number}",
            status=steps[-1][1],
            status_changed_at=steps[-1][2],
        )
        number += 1
        created_at_of[instance.id] = created_at
        instances.append(instance)
        for from_status, to_status, at, reason in steps:
            events.append(
                InstanceEvent(
                    tenant=tenant,
                    instance=instance,
                    from_status=from_status,
                    to_status=to_status,
                    reason=reason,
                    actor="system",
                    created_at=at,
                )
            )
            if from_status == Instance.Status.RUNNING and to_status == Instance.Status.FAILING_OVER:
                rpo = rng.uniform(2, 40)
                failovers.append(
                    Failover(
                        tenant=tenant,
                        instance=instance,
                        status=Failover.Status.COMPLETED,
                        reason="spot interrupted",
                        interrupted_at=at,
                        rpo_seconds=rpo,
                        rto_standby_seconds=rng.uniform(5, 60),
                        rto_gpu_seconds=rng.uniform(60, 400),
                    )
                )
            if tenant.pk in endpoints and from_status:
                deliveries.append(
                    WebhookDelivery(
                        tenant=tenant,
                        endpoint=endpoints[tenant.pk],
                        event=f"instance.{to_status}",
                        payload={"type": f"instance.{to_status}", "data": {"id": instance.id}},
                        status=WebhookDelivery.Status.SUCCEEDED,
                        attempt_count=1,
                        last_attempt_at=at,
                        delivered_at=at,
                        response_status_code=200,
                    )
                )
        written += len(steps)
        if len(events) >= BATCH:
            flush()
    flush()
    # created_at is auto_now_add: put each instance back at the start of its history.
    table = Instance._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE bench_created (id varchar(16), created_at timestamptz)")
        cursor.executemany("INSERT INTO bench_created VALUES (%s, %s)", list(created_at_of.items()))
        cursor.execute(
            f"UPDATE {table} SET created_at = b.created_at FROM bench_created b "
            f"WHERE {table}.id = b.id"
        )


def is_built(event_target: int) -> bool:
    result = subprocess.run(
        ["psql", *PSQL, "-d", DATABASE, "-tAc", "SELECT count(*) FROM instances_instanceevent"],
        capture_output=True,
        text=True,
    )
    return result.returncode == 0 and int(result.stdout.strip() or 0) >= event_target


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--reuse", action="store_true", help="keep a database already built")
    arguments = parser.parse_args()
    fresh = not (arguments.reuse and is_built(arguments.events))
    from bench.database import create_database, migrate

    if fresh:
        create_database(DATABASE)
    else:
        migrate()
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from prometheus_client import generate_latest

    from dumont.metrics import _database_registry
    from instances.models import Instance, InstanceEvent
    from webhooks.models import WebhookDelivery

    if fresh:
        started = time.perf_counter()
        build(arguments.events)
        print(f"built in {time.perf_counter() - started:.0f} s")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = %s ORDER BY 1",
            [InstanceEvent._meta.db_table],
        )
        indexes = [row[0] for row in cursor.fetchall()]
    started = time.perf_counter()
    generate_latest(_database_registry)
    first = (time.perf_counter() - started) * 1000
    tables = [InstanceEvent._meta.db_table, WebhookDelivery._meta.db_table]
    timings, table_timings = [], {table: [] for table in tables}
    for _ in range(arguments.runs):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            generate_latest(_database_registry)
            timings.append((time.perf_counter() - started) * 1000)
        for table in tables:
            table_timings[table].append(
                sum(
                    float(query["time"]) * 1000
                    for query in queries.captured_queries
                    if f'FROM "{table}"' in query["sql"]
                )
            )
    events = InstanceEvent.objects.count()
    provisioning = InstanceEvent.objects.filter(from_status=Instance.Status.PROVISIONING).count()
    print(f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"{events:,} events ({provisioning:,} out of provisioning), "
        f"{Instance.objects.count():,} instances, {WebhookDelivery.objects.count():,} webhook "
        f"deliveries; event indexes: {', '.join(indexes)}"
    )
    print(f"first scrape (an empty cache) ms: {first:.1f}")
    print(
        f"scrape (database half) ms: median {statistics.median(timings):.1f}, "
        f"max {max(timings):.1f} ({len(queries)} queries; "
        f"{arguments.runs} runs: {' '.join(f'{t:.1f}' for t in timings)})"
    )
    for table, table_ms in table_timings.items():
        print(
            f"  of which the queries on {table} ms: median {statistics.median(table_ms):.1f}"
            f" ({' '.join(f'{t:.1f}' for t in table_ms)})"
        )
    slowest = sorted(queries.captured_queries, key=lambda query: -float(query["time"]))
    for query in slowest[:4]:
        print(f"  {float(query['time']) * 1000:6.1f} ms  {query['sql'][:110]}")
    with connection.cursor() as cursor:
        for query in queries.captured_queries:
            if not any(f'FROM "{table}"' in query["sql"] for table in tables):
                continue
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query["sql"])
            print("plan:\n    " + "\n    ".join(row[0] for row in cursor.fetchall()))


if __name__ == "__main__":
    main()
