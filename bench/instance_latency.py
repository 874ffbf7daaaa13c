"""Create → running latency on the simulated market, as `make run` serves it.

Starts `manage.py launch` on a fresh $DUMONT_HOME (embedded SQLite + Redis, the simulator with
the given boot delay), then for each sample POSTs /api/instances and times until the tenant's
websocket says `running` (pending → provisioning → agent's first heartbeat). The boot delay is
the simulated provider's share; the rest is ours (API, Celery, provider calls, agent start-up).
Run:
    .venv/bin/python bench/instance_latency.py [--samples 5] [--provision-delay 0 3]
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embedded_startup import EMBEDDED_VARIABLES, ROOT, free_port, status_of


def post(url: str, token: str, body: dict | None = None, method: str = "POST") -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode() if body else None, method=method
    )
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def measure(samples: int, provision_delay: float) -> list[float]:
    home = Path(tempfile.mkdtemp(prefix="dumont-latency-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if key not in EMBEDDED_VARIABLES}
    env.update(DUMONT_HOME=str(home), LOG_LEVEL="WARNING")
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "launch",
            "--port",
            str(port),
            "--sim-port",
            str(free_port()),
            "--provision-delay",
            str(provision_delay),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while status_of(f"{base}/api/health") != 200:
            time.sleep(0.2)
        token = json.loads((home / "demo.json").read_text())["token"]
        latencies = []
        with connect(
            f"ws://127.0.0.1:{port}/ws/tenant/",
            additional_headers={"Authorization": f"Bearer {token}"},
        ) as socket:
            socket.recv(timeout=10)  # connected
            for _ in range(samples):
                started = time.perf_counter()
                created = post(
                    f"{base}/api/instances", token, {"gpu": "RTX 4090", "max_price": 1.0}
                )
                while True:
                    message = json.loads(socket.recv(timeout=60))
                    data = message["data"]
                    if data["instance"]["id"] == created["id"] and data["to_status"] == "running":
                        latencies.append(time.perf_counter() - started)
                        break
                post(f"{base}/api/instances/{created['id']}", token, method="DELETE")
        return latencies
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--provision-delay", type=float, nargs="+", default=[0.0, 3.0])
    arguments = parser.parse_args()
    for delay in arguments.provision_delay:
        latencies = measure(arguments.samples, delay)
        print(
            json.dumps(
                {
                    "provision_delay_s": delay,
                    "samples_s": [round(value, 2) for value in latencies],
                    "median_s": round(statistics.median(latencies), 2),
                }
            )
        )


if __name__ == "__main__":
    main()
