"""GET /api/instances in process: CPU time and queries per request for a tenant with N instances.

Builds database `dumont_api_list_bench` (dropped first): one organisation with `--instances`
running instances, each with a following CPU standby (as Pro plans have) and a lost one before
it; then calls GET /api/instances?limit=N with the tenant's API token through Django's test
client: one warm-up request, then `--runs` timed ones. Prints the median and max process CPU
time per request (time.process_time: this process's CPU, so Postgres's share is not counted),
the wall time and the queries of one request.
Run (Postgres and Redis on this machine, as for `make test`):
    .venv/bin/python bench/api_list.py [--instances 2 50] [--runs 200]
"""

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "dumont_api_list_bench"
os.environ.update(
    DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{DATABASE}",
    REDIS_URL="redis://127.0.0.1:6379/7",
    SECRET_KEY="bench-only",
    DUMONT_HOME=str(ROOT / "var" / "bench"),
    DJANGO_SETTINGS_MODULE="dumont.settings",
    LOG_LEVEL="WARNING",
    THROTTLE_TOKEN="1000000/min",  # every request comes from one token and address
    THROTTLE_ADDRESS="1000000/min",
)
sys.path.insert(0, str(ROOT))


def build(count: int) -> str:
    """An organisation with `count` running instances and their standbys; returns its token."""
    from django.utils import timezone

    from accounts.tests.factories import make_account
    from instances.models import Instance, Standby, new_instance_id

    _user, tenant, _membership, token = make_account()
    now = timezone.now()
    instances = Instance.objects.bulk_create(
        Instance(
            id=new_instance_id(),
            tenant=tenant,
            name=f"box-{number}",
            gpu="RTX 4090",
            region="US-East",
            max_price_micros=3_000_000,
            price_micros=450_000,
            provision_key=f"k{tenant.pk}-{number}",
            status=Instance.Status.RUNNING,
            status_changed_at=now,
            ssh_host=f"ssh{number}.example.net",
            ssh_port=40000 + number,
        )
        for number in range(count)
    )
    Standby.objects.bulk_create(
        Standby(
            tenant=tenant,
            instance=instance,
            status=status,
            region="US-West",
            provider="sim",
            provision_key=f"{instance.pk}-standby-{attempt}",
        )
        for instance in instances
        for attempt, status in enumerate((Standby.Status.LOST, Standby.Status.FOLLOWING))
    )
    return token


def measure(client, count: int, runs: int) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    path = f"/api/instances?limit={count}"
    warm = client.get(path)
    assert warm.status_code == 200 and len(warm.json()["results"]) == count, warm.status_code
    cpu, wall = [], []
    for _ in range(runs):
        started_cpu, started = time.process_time(), time.perf_counter()
        client.get(path)
        cpu.append((time.process_time() - started_cpu) * 1000)
        wall.append((time.perf_counter() - started) * 1000)
    with CaptureQueriesContext(connection) as queries:
        client.get(path)
    print(
        f"{count} instances: CPU ms median {statistics.median(cpu):.2f}, max {max(cpu):.2f}; "
        f"wall ms median {statistics.median(wall):.2f}; {len(queries)} queries"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, nargs="+", default=[2, 50])
    parser.add_argument("--runs", type=int, default=200)
    arguments = parser.parse_args()
    from bench.database import create_database

    create_database(DATABASE)
    import django

    django.setup()
    from django.test import Client
    from django.test.utils import setup_test_environment

    setup_test_environment()  # the test client's host
    print(f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}")
    for count in arguments.instances:
        client = Client(HTTP_AUTHORIZATION=f"Bearer {build(count)}")
        measure(client, count, arguments.runs)


if __name__ == "__main__":
    main()
