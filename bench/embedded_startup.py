"""How long `make run` takes to be healthy, and how fast the API answers, on embedded defaults.

Each run starts `manage.py launch` in a fresh $DUMONT_HOME (so migrations run from scratch),
times the wait until GET /api/health answers 200, then times sequential GET /api/me calls with the
demo token. Run:
    .venv/bin/python bench/embedded_startup.py [--runs 5] [--requests 300] [--home DIR]
"""

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What `make run` chooses itself (the embedded defaults), never inherited from this environment.
EMBEDDED_VARIABLES = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "SECRET_KEY",
    "SIM_PROVIDER_URL",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def status_of(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0


def launch_market(
    home: Path, port: int, sim_port: int, *, provision_delay: float, sync_seconds: float
) -> subprocess.Popen:
    """`manage.py launch` on `home` as the simulated-market benches run it: quiet logs, agents
    syncing every `sync_seconds`, reconcile every 5 s, its output in `home/launch.log`."""
    env = {key: value for key, value in os.environ.items() if key not in EMBEDDED_VARIABLES}
    env.update(
        DUMONT_HOME=str(home),
        LOG_LEVEL="WARNING",
        SNAPSHOT_SYNC_INTERVAL_SECONDS=str(sync_seconds),
        RECONCILE_INTERVAL_SECONDS="5",
    )
    command = [sys.executable, "manage.py", "launch", "--port", str(port)]
    command += ["--sim-port", str(sim_port), "--stripe-port", str(free_port())]
    command += ["--provision-delay", str(provision_delay)]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=(home / "launch.log").open("ab"),
        stderr=subprocess.STDOUT,
    )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def one_run(requests: int, home: Path | None) -> dict[str, float]:
    home = home or Path(tempfile.mkdtemp(prefix="dumont-bench-"))
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if key not in EMBEDDED_VARIABLES}
    env["DUMONT_HOME"] = str(home)
    started_at = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "launch", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while status_of(f"{base_url}/api/health") != 200:
            if process.poll() is not None or time.monotonic() - started_at > 300:
                raise RuntimeError("launch did not become healthy")
            time.sleep(0.1)
        healthy_seconds = time.monotonic() - started_at
        token = json.loads((home / "demo.json").read_text())["token"]
        latencies = []
        for _ in range(requests):
            begin = time.perf_counter()
            assert status_of(f"{base_url}/api/me", token) == 200
            latencies.append((time.perf_counter() - begin) * 1000)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    return {
        "healthy_seconds": healthy_seconds,
        "me_p50_ms": percentile(latencies, 0.50),
        "me_p95_ms": percentile(latencies, 0.95),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument(
        "--home",
        type=Path,
        help="reuse this DUMONT_HOME (a restart) instead of a fresh one per run",
    )
    arguments = parser.parse_args()
    runs = [one_run(arguments.requests, arguments.home) for _ in range(arguments.runs)]
    for number, run in enumerate(runs, 1):
        print(f"run {number}: " + ", ".join(f"{key}={value:.2f}" for key, value in run.items()))
    print(f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}")
    for key in runs[0]:
        print(f"median {key}: {statistics.median(run[key] for run in runs):.2f}")


if __name__ == "__main__":
    main()
