"""The portal's dashboard with 200 instances on Postgres: time and queries of GET /.

Builds database `dumont_portal_dashboard_bench` (dropped first): one organisation with
`--instances` instances in every live status (running ones with SSH, a usage interval open and
usage posted to the ledger; some on their CPU standby; some deleted, which the page leaves out),
then signs in with Django's test client and times `--runs` GET / after one warm-up request,
printing the median and max time, the query count and the page size.
Run (Postgres on this machine, as for `make test`):
    .venv/bin/python bench/portal_dashboard.py [--instances 200] [--runs 15]
"""

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "dumont_portal_dashboard_bench"
os.environ.update(
    DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{DATABASE}",
    REDIS_URL="redis://127.0.0.1:6379/7",
    SECRET_KEY="bench-only",
    DUMONT_HOME=str(ROOT / "var" / "bench"),
    DJANGO_SETTINGS_MODULE="dumont.settings",
    LOG_LEVEL="WARNING",
)
sys.path.insert(0, str(ROOT))


def build(count: int):
    """One organisation and its instances; returns the owner (to sign in) and the live count."""
    from django.utils import timezone

    from accounts.tests.factories import make_account
    from billing import ledger
    from billing.models import LedgerEntry, UsageInterval
    from instances.models import Instance, Standby, new_instance_id

    user, tenant, _membership, _token = make_account()
    now = timezone.now()
    statuses = [
        Instance.Status.RUNNING,
        Instance.Status.RUNNING,
        Instance.Status.RUNNING,
        Instance.Status.HIBERNATED,
        Instance.Status.PROVISIONING,
        Instance.Status.ON_STANDBY,
        Instance.Status.ERROR,
        Instance.Status.DELETED,
    ]
    instances = []
    for number in range(count):
        status = statuses[number % len(statuses)]
        reachable = status in (Instance.Status.RUNNING, Instance.Status.ON_STANDBY)
        instances.append(
            Instance(
                id=new_instance_id(),
                tenant=tenant,
                name=f"box-{number}",
                gpu=["RTX 4090", "A100", "H100"][number % 3],
                region=["US-East", "EU-West", "US-West", "Asia-Pacific"][number % 4],
                max_price_micros=3_000_000,
                price_micros=450_000 + number * 1000,
                provision_key=f"k{number}",
                status=status,
                status_reason="no offer under the maximum price" if status == "error" else "",
                status_changed_at=now - timedelta(hours=2),
                ssh_host=f"ssh{number}.example.net" if reachable else "",
                ssh_port=40000 + number if reachable else None,
                is_on_standby=status == Instance.Status.ON_STANDBY,
                created_at=now - timedelta(minutes=number),
            )
        )
    Instance.objects.bulk_create(instances)
    standbys, intervals = [], []
    for instance in instances:
        if instance.status == Instance.Status.ON_STANDBY:
            standbys.append(
                Standby(
                    tenant=tenant,
                    instance=instance,
                    status=Standby.Status.SERVING,
                    region=instance.region,
                    provider="sim",
                    provision_key=f"s-{instance.pk}",
                    ssh_host="standby.example.net",
                    ssh_port=2222,
                )
            )
        if instance.status == Instance.Status.RUNNING:
            intervals.append(
                UsageInterval(
                    tenant=tenant,
                    kind=UsageInterval.Kind.GPU,
                    subject_id=instance.pk,
                    price_micros_per_hour=instance.price_micros,
                    started_at=now - timedelta(hours=2),
                    posted_until=now - timedelta(hours=1),
                    posted_micros=instance.price_micros,
                )
            )
    Standby.objects.bulk_create(standbys)
    UsageInterval.objects.bulk_create(intervals)
    for instance in instances:
        for hour in range(3):  # posted usage: three hourly entries each
            ledger.post(
                tenant,
                LedgerEntry.Kind.USAGE_GPU,
                -instance.price_micros,
                idempotency_key=f"bench-{instance.pk}-{hour}",
                reference=instance.pk,
            )
    live = sum(instance.status != Instance.Status.DELETED for instance in instances)
    return user, live


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--runs", type=int, default=15)
    arguments = parser.parse_args()
    from bench.database import create_database

    create_database(DATABASE)
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment

    setup_test_environment()  # the test client's host, and no e-mail leaves
    user, live = build(arguments.instances)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    client = Client()
    client.force_login(user)
    warm = client.get("/")
    assert warm.status_code == 200, warm.status_code
    assert warm.content.decode().count("data-instance-id=") == live
    timings = []
    for _ in range(arguments.runs):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get("/")
            timings.append((time.perf_counter() - started) * 1000)
    print(f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"{arguments.instances} instances ({live} cards); {len(queries)} queries per page; "
        f"{len(response.content) / 1024:.0f} KiB of HTML"
    )
    print(
        f"GET / ms: median {statistics.median(timings):.1f}, max {max(timings):.1f} "
        f"({arguments.runs} runs: {' '.join(f'{t:.1f}' for t in timings)})"
    )


if __name__ == "__main__":
    main()
