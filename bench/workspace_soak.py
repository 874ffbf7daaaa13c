"""The workspace model checker, long: `--operations` random user operations on the system as
`make run` serves it (embedded SQLite and Redis, the simulated market, real agents, beat and
reconcile running), every invariant of snapshots/tests/workspace_model.py checked after each.

Starts `manage.py launch` on a fresh $DUMONT_HOME, turns auto-hibernation off for the demo
tenant (the checker hibernates on purpose) and runs the checker as the demo user. Prints the
seed, the operations and their counts, the distinct pairs of consecutive operations
(interleavings), the violations (the run stops at the first: the model no longer describes the
system after it) and the load average.

Run:
    .venv/bin/python bench/workspace_soak.py [--operations 1000] [--seed N]
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from embedded_startup import free_port, launch_market, status_of

from snapshots.tests.workspace_model import Platform, Violation, WorkspaceChecker


def api_caller(base: str, token: str):
    def call(method: str, path: str, body: dict | None) -> tuple[int, dict]:
        request = urllib.request.Request(
            base + path,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    return call


def simulator_of(sim: str):
    def workspace_of(instance: dict) -> Path:
        with urllib.request.urlopen(f"{sim}/v1/machines/{instance['provider_id']}") as reply:
            return Path(json.loads(reply.read())["folder"]) / "workspace"

    def take_machine(machine_id: str) -> None:
        request = urllib.request.Request(f"{sim}/v1/machines/{machine_id}/interrupt", b"{}")
        urllib.request.urlopen(request, timeout=30).close()

    return workspace_of, take_machine


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--operations", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--tree-files", type=int, default=3000)
    parser.add_argument("--provision-delay", type=float, default=1.0)
    parser.add_argument("--sync-seconds", type=float, default=2.0)
    arguments = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="dumont-soak-"))
    port, sim_port = free_port(), free_port()
    base, sim = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sim_port}"
    process = launch_market(
        home,
        port,
        sim_port,
        provision_delay=arguments.provision_delay,
        sync_seconds=arguments.sync_seconds,
    )
    print(f"home: {home}; seed {arguments.seed}", flush=True)
    loads: list[float] = []
    stop = threading.Event()

    def sample_load() -> None:
        while not stop.wait(5):
            loads.append(float(Path("/proc/loadavg").read_text().split()[0]))

    sampler = threading.Thread(target=sample_load, daemon=True)
    started = time.monotonic()
    violation = ""
    try:
        deadline = time.monotonic() + 120
        while status_of(f"{base}/api/health") != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("launch did not become healthy")
            time.sleep(0.5)
        token = json.loads((home / "demo.json").read_text())["token"]
        call = api_caller(base, token)
        call("PATCH", "/api/settings/standby", {"auto_hibernate": False})
        workspace_of, take_machine = simulator_of(sim)
        checker = WorkspaceChecker(
            Platform(call, workspace_of, take_machine, timeout_seconds=300),
            arguments.seed,
            tree_files=arguments.tree_files,
            say=lambda line: print(line, flush=True),
        )
        sampler.start()
        try:
            checker.run(arguments.operations)
        except Violation as error:
            violation = str(error)
        report = checker.report
    finally:
        stop.set()
        process.send_signal(2)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    minutes = (time.monotonic() - started) / 60
    print(f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"seed {report.seed}: {report.steps} operations in {minutes:.1f} min")
    print("operations: " + ", ".join(f"{k} {v}" for k, v in sorted(report.operations.items())))
    print(f"distinct interleavings (pairs of consecutive operations): {len(report.interleavings)}")
    print(f"invariant violations: {1 if violation else 0}{f': {violation}' if violation else ''}")
    if loads:
        print(f"load average (1 min) during the run: {min(loads):.2f}-{max(loads):.2f}")
    sys.exit(1 if violation else 0)


if __name__ == "__main__":
    main()
