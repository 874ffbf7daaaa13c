"""The auto-hibernation sweep at 100,000 instances on Postgres: queries counted, time measured.

Builds database `dumont_idle_bench` (dropped first): 1,000 tenants (half with their own Standby
Config, some with auto-hibernation off) and `--instances` instances spread over them, most
running and beating, 1 % idle past their tenant's minutes, the rest in other statuses. Then runs
`instances.idle.idle_instance_ids()` (what the beat task runs every 30 s) `--runs` times and
prints the query count, the idle instances found (checked against the count computed in Python
from the same rows) and the time per sweep.
Run (Postgres on this machine, as for `make test`):
    .venv/bin/python bench/idle_sweep.py [--instances 100000] [--runs 7]
"""

import argparse
import os
import platform
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "dumont_idle_bench"
os.environ.update(
    DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{DATABASE}",
    REDIS_URL="redis://127.0.0.1:6379/9",
    SECRET_KEY="bench-only",
    DUMONT_HOME=str(ROOT / "var" / "bench"),
    DJANGO_SETTINGS_MODULE="dumont.settings",
    LOG_LEVEL="WARNING",
)
sys.path.insert(0, str(ROOT))


def build(count: int) -> int:
    """Create the rows; returns how many are idle by construction."""
    from django.utils import timezone

    from accounts.models import Tenant, TenantSettings
    from instances.models import Instance, new_instance_id

    rng = random.Random(42)
    now = timezone.now()
    tenants = Tenant.objects.bulk_create(Tenant(name=f"bench-{n}") for n in range(1000))
    settings_rows = []
    for number, tenant in enumerate(tenants[:500]):
        settings_rows.append(
            TenantSettings(
                tenant=tenant,
                auto_hibernate=number % 10 != 0,  # one in ten switched off
                idle_threshold_percent=5,
                idle_minutes=[5, 10, 30][number % 3],
            )
        )
    TenantSettings.objects.bulk_create(settings_rows)
    minutes_of = {row.tenant_id: (row.idle_minutes, row.auto_hibernate) for row in settings_rows}
    idle = 0
    batch = []
    for number in range(count):
        tenant = tenants[number % len(tenants)]
        minutes, is_on = minutes_of.get(tenant.pk, (5, True))
        status = Instance.Status.RUNNING if number % 20 else Instance.Status.HIBERNATED
        is_idle = status == Instance.Status.RUNNING and number % 100 == 7
        quiet = minutes + 1 + rng.random() * 60 if is_idle else rng.random() * (minutes - 0.5)
        idle += is_idle and is_on
        batch.append(
            Instance(
                id=new_instance_id(),
                tenant=tenant,
                name=f"box-{number}",
                gpu="RTX 4090",
                region="US-East",
                max_price_micros=500_000,
                provision_key=f"k{number}",
                status=status,
                status_changed_at=now - timedelta(hours=2),
                running_since=now - timedelta(hours=2),
                last_heartbeat_at=now - timedelta(seconds=rng.random() * 10),
                last_busy_at=now - timedelta(minutes=quiet),
            )
        )
        if len(batch) == 5000:
            Instance.objects.bulk_create(batch)
            batch = []
    Instance.objects.bulk_create(batch)
    return idle


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    arguments = parser.parse_args()
    from bench.database import create_database

    create_database(DATABASE)
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from instances.idle import idle_instance_ids

    expected = build(arguments.instances)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    timings, found = [], []
    for _ in range(arguments.runs):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            found = idle_instance_ids()
            timings.append((time.perf_counter() - started) * 1000)
    print(f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"{arguments.instances:,} instances; idle by construction {expected:,}, "
        f"found {len(found):,}; {len(queries)} query per sweep"
    )
    print(
        f"sweep ms: median {statistics.median(timings):.1f}, max {max(timings):.1f} "
        f"({arguments.runs} runs: {' '.join(f'{t:.1f}' for t in timings)})"
    )
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + queries[0]["sql"])
        print("plan:", " / ".join(row[0].strip() for row in cursor.fetchall()[:4]))


if __name__ == "__main__":
    main()
