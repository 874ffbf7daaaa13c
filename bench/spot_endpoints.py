"""Spot endpoints at scale: 12 months of 5-minute samples for 50 GPUs x 4 regions on Postgres.

Builds database `dumont_spot_bench` (dropped first): the catalog's GPUs plus market GPUs up to 50,
4 regions, a sample every 5 minutes for 365 days ending now (about 21 million rows, written by
one INSERT ... SELECT over generate_series with a daily price rhythm and hashed noise), a year of
interruptions, then rolls the samples up with the product's own `spot.history.roll_up`, month by
month. Then calls each endpoint in-process through Django's test client with a token (routing,
auth, ORM, serialisation; no socket), `--requests` times after 3 warm-up calls, and prints p50
and p95 per endpoint. `--reuse` skips the build when the database is already there.
Run (Postgres on this machine, as for `make test`):
    .venv/bin/python bench/spot_endpoints.py [--requests 40] [--reuse]
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
DATABASE = "dumont_spot_bench"
GPUS = 50  # the catalog, then market GPUs outside it up to this many
REGIONS = ("US-East", "US-West", "EU-West", "Asia-Pacific")
ENDPOINTS = [
    ("GET", "/api/spot/monitor", None),
    ("GET", "/api/spot/llm-gpus?model_size=13B", None),
    ("GET", "/api/spot/fleet-strategy?workload=training&budget=5000", None),
    ("GET", "/api/spot/prediction/RTX%204090", None),
    ("GET", "/api/spot/availability?gpu=A100", None),
    ("GET", "/api/spot/training-cost?model=llama2-7b&dataset_size=10GB", None),
    ("GET", "/api/spot/savings?gpu=H100&hours=100", None),
    ("GET", "/api/spot/reliability?gpu=RTX%204090", None),
    ("GET", "/api/spot/interruption-rates?period=30d", None),
    ("GET", "/api/spot/safe-windows/RTX%204090", None),
    ("POST", "/api/advisor", {"workload": "LoRA fine-tune of a 7B model", "budget_usd": 50}),
]

os.environ.update(
    DATABASE_URL=os.environ.get(
        "BENCH_DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{DATABASE}"
    ),
    REDIS_URL=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9"),
    SECRET_KEY="bench-only",
    DUMONT_HOME=str(ROOT / "var" / "bench"),
    DJANGO_SETTINGS_MODULE="dumont.settings",
    ADVISOR_API_KEY="",
    THROTTLE_ADVISOR="100000/hour",
    LOG_LEVEL="WARNING",
)
sys.path.insert(0, str(ROOT))


def fill(names: list[str], catalog: list[str], days: int) -> None:
    """Samples for every GPU x region x 5 minutes of the last year, in SQL."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        cursor.execute("SELECT setseed(0.42)")
        # Indexes are built once after the load: far faster than maintaining them row by row.
        cursor.execute("ALTER TABLE spot_marketsample DROP CONSTRAINT sample_unique")
        cursor.execute("DROP INDEX sample_time")
        for index, name in enumerate(names):
            # Base price from the GPU's position; a daily rhythm of +-8 %; +-5 % noise.
            cursor.execute(
                """
                INSERT INTO spot_marketsample
                    (gpu, region, source, taken_at, min_micros, median_micros, p90_micros,
                     available)
                SELECT %(gpu)s, region, 'bench', moment, price, price * 11 / 10,
                       price * 13 / 10, 1 + (random() * 40)::int
                FROM unnest(%(regions)s::text[]) WITH ORDINALITY AS r(region, position),
                     generate_series(date_trunc('minute', now()) - %(days)s * interval '1 day',
                                     now(), interval '5 minutes') AS moment,
                     LATERAL (SELECT (%(base)s * (1 + 0.03 * position)
                        * (1 + 0.08 * sin(extract(epoch FROM moment) / 86400 * 2 * pi()))
                        * (0.95 + random() * 0.1))::bigint AS price) AS p
                """,
                {
                    "gpu": name,
                    "regions": list(REGIONS),
                    "base": 150_000 + 97_000 * index,
                    "days": days,
                },
            )
            print(f"  samples of {name} ({index + 1}/{len(names)})", flush=True)
        cursor.execute(
            "ALTER TABLE spot_marketsample ADD CONSTRAINT sample_unique "
            "UNIQUE (gpu, region, source, taken_at)"
        )
        cursor.execute("CREATE INDEX sample_time ON spot_marketsample (taken_at)")
        cursor.execute(
            """
            INSERT INTO spot_interruption
                (gpu, region, provider, occurred_at, duration_seconds, reference)
            SELECT gpus[1 + n %% array_length(gpus, 1)], (%(regions)s::text[])[1 + n %% 4],
                   'bench', now() - (n * interval '1 hour' * %(days)s * 24 / 5000),
                   60 + n %% 600, 'bench-' || n
            FROM generate_series(1, 5000) AS n, (SELECT %(catalog)s::text[] AS gpus) AS g
            """,
            {"regions": list(REGIONS), "catalog": catalog, "days": days},
        )
        cursor.execute("ANALYZE")


def roll_up_history(days: int) -> float:
    from django.utils import timezone

    from spot.history import roll_up

    now = timezone.now()
    started = time.perf_counter()
    for month in range(days // 30 + 1, -1, -1):
        roll_up(now - timedelta(days=30 * (month + 1)), now - timedelta(days=30 * month))
    roll_up(now - timedelta(hours=2), now + timedelta(minutes=1))
    return time.perf_counter() - started


def measure(requests: int) -> dict[str, tuple[float, float, int]]:
    from django.test import Client

    from accounts.services import sign_up

    account = sign_up(f"bench-{time.time_ns()}@example.com", "bench-password-1", "Bench", ip=None)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {account.token_plaintext}", HTTP_HOST="localhost")
    results = {}
    for method, path, body in ENDPOINTS:

        def call(method=method, path=path, body=body):
            if method == "POST":
                return client.post(path, body, content_type="application/json")
            return client.get(path)

        for _ in range(3):
            response = call()
            assert response.status_code == 200, (path, response.content[:300])
        timings = []
        for _ in range(requests):
            started = time.perf_counter()
            call()
            timings.append((time.perf_counter() - started) * 1000)
        timings.sort()
        p95 = timings[max(0, round(0.95 * len(timings)) - 1)]
        results[path] = (statistics.median(timings), p95, len(response.content))
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--days", type=int, default=365, help="history length")
    arguments = parser.parse_args()
    from bench.database import create_database, migrate

    if not arguments.reuse:
        create_database(DATABASE)
    else:  # the code may have new migrations since the database was built
        migrate()
    import django

    django.setup()
    from django.db import connection

    from spot.catalog import gpus
    from spot.models import MarketSample, PriceRollup

    catalog = [gpu.name for gpu in gpus()]
    names = catalog + [f"Market GPU {n:02d}" for n in range(GPUS - len(catalog))]
    if not arguments.reuse:
        started = time.perf_counter()
        fill(names, catalog, arguments.days)
        print(f"filled in {time.perf_counter() - started:.0f} s", flush=True)
        print(f"rolled up in {roll_up_history(arguments.days):.0f} s", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        size = cursor.fetchone()[0]
    print(
        f"{MarketSample.objects.count():,} samples, "
        f"{PriceRollup.objects.filter(period='hour').count():,} hourly and "
        f"{PriceRollup.objects.filter(period='day').count():,} daily rollups; database {size}"
    )
    print(f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'endpoint':62} {'p50 ms':>8} {'p95 ms':>8} {'bytes':>7}")
    for path, (p50, p95, size) in measure(arguments.requests).items():
        print(f"{path:62} {p50:8.1f} {p95:8.1f} {size:7}")


if __name__ == "__main__":
    main()
