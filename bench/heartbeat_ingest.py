"""Heartbeat ingest rate of ONE web process (uvicorn, ASGI) on Postgres.

Seeds N running instances with agent tokens in database `dumont_bench`, starts one uvicorn
process, then a load client (a separate process: a minimal HTTP/1.1 client on asyncio streams,
keep-alive, C concurrent agents) posts heartbeats for D seconds. Prints heartbeats/s and
latency per run and the median. HEARTBEAT_FAST_LANE=false measures the Django view alone.
Run (Postgres and Redis on this machine, as for `make test`):
    .venv/bin/python bench/heartbeat_ingest.py [--runs 3] [--seconds 10] [--instances 1000]
"""

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dumont_bench"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def environment() -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": "bench-only",
        "DUMONT_HOME": str(ROOT / "var" / "bench"),
        "LOG_LEVEL": "WARNING",
    }


def seed(instances: int) -> list[str]:
    """Create the database, migrate, and N running instances; return their agent tokens."""
    subprocess.run(
        ["createdb", "-h", "127.0.0.1", "-U", "postgres", "dumont_bench"],
        stderr=subprocess.DEVNULL,
        check=False,
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=environment(), check=True
    )
    script = f"""
import json
from django.utils import timezone
from accounts.services import sign_up
from instances.agent_tokens import agent_token, hash_agent_token
from instances.models import Instance
Instance.objects.all().delete()
tenant = sign_up(email=f"bench{{timezone.now().timestamp()}}@example.com",
                 password="a long bench passphrase", organization="Bench", ip=None).tenant
tokens = []
rows = []
for n in range({instances}):
    instance = Instance(tenant=tenant, name=f"b{{n}}", gpu="RTX 4090", region="US-East",
                        max_price_micros=500000, status="running",
                        status_changed_at=timezone.now())
    instance.provision_key = f"{{instance.id}}-1"
    token = agent_token(instance.id, instance.provision_key)
    instance.agent_token_hash = hash_agent_token(token)
    rows.append(instance)
    tokens.append(token)
Instance.objects.bulk_create(rows)
print(json.dumps(tokens))
"""
    output = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=environment(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


async def load(url: str, tokens: list[str], seconds: float, concurrency: int) -> dict:
    """C keep-alive connections, each sending one beat after another (a minimal HTTP/1.1
    client on asyncio streams: a general-purpose client library costs more CPU per request
    than the server under test, on the same two cores)."""
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds

    async def agent(offset: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port))
        n = offset
        while time.monotonic() < deadline:
            token = tokens[n % len(tokens)]
            n += concurrency
            body = json.dumps({"gpu_utilization_percent": 50.0 + n % 40}).encode()
            request = (
                f"POST /api/agent/heartbeat HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            started = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            if status_line.split()[1] == b"200":
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1
        writer.close()

    began = time.monotonic()
    await asyncio.gather(*(agent(i) for i in range(concurrency)))
    elapsed = time.monotonic() - began
    latencies.sort()
    return {
        "per_second": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p95_ms": latencies[int(len(latencies) * 0.95)] * 1000,
        "errors": errors,
    }


def one_run(tokens: list[str], seconds: float, concurrency: int) -> dict:
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "dumont.asgi:application",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=environment(),
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        # warm up connections and the ORM, then measure in a separate client process
        client = subprocess.run(
            [
                sys.executable,
                __file__,
                "--client",
                url,
                "--seconds",
                str(seconds),
                "--concurrency",
                str(concurrency),
            ],
            input=json.dumps(tokens),
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(client.stdout)
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--client")
    arguments = parser.parse_args()
    if arguments.client:
        tokens = json.loads(sys.stdin.read())
        asyncio.run(load(arguments.client, tokens, 1.0, arguments.concurrency))  # warm-up
        result = asyncio.run(
            load(arguments.client, tokens, arguments.seconds, arguments.concurrency)
        )
        print(json.dumps(result))
        return
    tokens = seed(arguments.instances)
    runs = [
        one_run(tokens, arguments.seconds, arguments.concurrency) for _ in range(arguments.runs)
    ]
    for run in runs:
        print(json.dumps({key: round(value, 1) for key, value in run.items()}))
    print(
        json.dumps(
            {
                "median_heartbeats_per_second": round(
                    statistics.median(run["per_second"] for run in runs), 1
                ),
                "median_p50_ms": round(statistics.median(run["p50_ms"] for run in runs), 2),
                "median_p95_ms": round(statistics.median(run["p95_ms"] for run in runs), 2),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
