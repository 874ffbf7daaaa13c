"""Failover on the simulated market, as `make run` serves it: RTO to the standby, RTO to a new
GPU, and RPO, over many injected interruptions.

Starts `manage.py launch` on a fresh $DUMONT_HOME (embedded SQLite + Redis, the simulator booting
machines in `--provision-delay` seconds, agents syncing every `--sync-seconds`), turns
auto-hibernation off for the demo tenant, creates `--instances` GPUs (each gets its CPU standby:
the demo tenant is on the Pro trial) and writes a file in each workspace. Then each instance, in
its own thread, is interrupted `--rounds` times through POST /simulate-interruption at a random
moment, and the bench waits until its failover is completed and its standby follows again. The
figures are the API's own measurements (GET /api/instances/{id}/failovers).

Where the seconds go, read afterwards from the run's database (each failover's events and its
standby's `promote` command): detect (interruption -> `failing_over`: the check_machine task
waiting in Celery), to the beat (the promote command waiting for the standby's next heartbeat),
promote + report (the standby's catch-up restore, then its result riding on its next beat), and
for the RPO the sync it restored: its age at the interruption. The load average is sampled
every 5 s during the rounds.
Run:
    .venv/bin/python bench/failover.py [--instances 4] [--rounds 50]
"""

import argparse
import datetime as dt
import json
import os
import platform
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embedded_startup import free_port, launch_market, status_of


def call(base: str, token: str, path: str, body: dict | None = None, method: str = "GET"):
    request = urllib.request.Request(
        base + path, data=json.dumps(body).encode() if body is not None else None, method=method
    )
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(what)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(values: list[float]) -> str:
    return (
        f"p50 {statistics.median(values):7.2f}  p95 {percentile(values, 0.95):7.2f}  "
        f"p99 {percentile(values, 0.99):7.2f}  max {max(values):7.2f}  (n={len(values)})"
    )


def sample_load(stop: threading.Event, samples: list[float]) -> None:
    while not stop.wait(5):
        samples.append(float(Path("/proc/loadavg").read_text().split()[0]))


def phases(database: Path) -> dict[str, list[float]]:
    """Seconds of each step of every completed failover served by its standby first."""

    def seconds(start: str | None, end: str | None) -> float | None:
        if not start or not end:
            return None
        return (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()

    found: dict[str, list[float]] = {}
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            """
            SELECT f.interrupted_at, f.standby_serving_at, f.gpu_serving_at,
                (SELECT MIN(e.created_at) FROM instances_instanceevent e
                 WHERE e.instance_id = f.instance_id AND e.to_status = 'failing_over'
                   AND e.created_at >= f.interrupted_at),
                c.created_at, c.sent_at, c.finished_at
            FROM instances_failover f
            LEFT JOIN instances_agentcommand c ON c.id = (
                SELECT MIN(id) FROM instances_agentcommand
                WHERE instance_id = f.instance_id AND kind = 'promote'
                  AND created_at >= f.interrupted_at)
            WHERE f.status = 'completed'
            """
        ).fetchall()
    for interrupted, serving, gpu, failing, queued, sent, finished in rows:
        for name, value in (
            ("detect (-> failing_over)", seconds(interrupted, failing)),
            ("promote queued -> sent", seconds(queued, sent)),
            ("promote sent -> result", seconds(sent, finished)),
            ("result -> on_standby", seconds(finished, serving)),
            ("on_standby -> GPU serving", seconds(serving, gpu)),
        ):
            if value is not None:
                found.setdefault(name, []).append(value)
    return found


class InstanceFailed(Exception):
    """The instance ended in `error`: no more rounds for it."""


def ready(base, token, instance_id) -> bool:
    instance = call(base, token, f"/api/instances/{instance_id}")
    if instance["status"] == "error":
        raise InstanceFailed(instance["status_reason"])
    return bool(
        instance["status"] == "running"
        and (instance["standby"] or {}).get("status") == "following"
        and instance["last_sync_at"]
    )


def drive(base, token, sim, home, instance_id, rounds, results, errors):
    rng = random.Random(instance_id)
    for _ in range(rounds):
        try:
            wait_for(
                lambda: ready(base, token, instance_id),
                120,
                "running with a following standby",
            )
            time.sleep(rng.uniform(0, 3))  # interrupt at a random moment between syncs
            before = len(call(base, token, f"/api/instances/{instance_id}/failovers")["results"])
            posted_at = dt.datetime.now(dt.UTC)
            call(base, token, f"/api/instances/{instance_id}/simulate-interruption", {}, "POST")
            failover = wait_for(
                lambda before=before: (
                    (found := call(base, token, f"/api/instances/{instance_id}/failovers"))["count"]
                    > before
                    and found["results"][0]["status"] == "completed"
                    and found["results"][0]
                ),
                180,
                "the failover to complete",
            )
            # The API's clock starts when the worker's check_machine task sees the machine
            # gone; from the request, the task's wait in Celery counts too.
            interrupted_at = dt.datetime.fromisoformat(failover["interrupted_at"])
            failover["queued_seconds"] = (interrupted_at - posted_at).total_seconds()
            results.append(failover)
        except InstanceFailed as error:
            errors.append(f"{instance_id}: in error: {error}")
            return
        except Exception as error:  # record and go on: the figures say how many completed
            errors.append(f"{instance_id}: {error}")
            keep_agent_log(base, token, sim, home, instance_id)


def keep_agent_log(base, token, sim, home: Path, instance_id) -> None:
    """A round that did not complete: keep its machine's agent log (the simulator deletes the
    folder with the machine) beside the launch log, for the post-mortem."""
    machine = call(base, token, f"/api/instances/{instance_id}")["provider_id"]
    try:
        with urllib.request.urlopen(f"{sim}/v1/machines/{machine}") as reply:
            folder = Path(json.loads(reply.read())["folder"])
        log = (folder / "agent.log").read_bytes()
    except (OSError, ValueError, KeyError) as error:
        log = f"no agent log for {machine!r}: {error}\n".encode()
    (home / f"stuck-{instance_id}-{machine}-{int(time.time())}.log").write_bytes(log)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--provision-delay", type=float, default=3.0)
    parser.add_argument("--sync-seconds", type=float, default=2.0)
    arguments = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="dumont-failover-"))
    port, sim_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    process = launch_market(
        home,
        port,
        sim_port,
        provision_delay=arguments.provision_delay,
        sync_seconds=arguments.sync_seconds,
    )
    print(f"home: {home} (launch.log, stuck-*.log)", flush=True)
    load_samples: list[float] = []
    try:
        wait_for(lambda: status_of(f"{base}/api/health") == 200, 120, "health")
        token = json.loads((home / "demo.json").read_text())["token"]
        call(base, token, "/api/settings/standby", {"auto_hibernate": False}, "PATCH")
        ids = []
        for _ in range(arguments.instances):
            created = call(
                base, token, "/api/instances", {"gpu": "RTX 4090", "max_price": 2.0}, "POST"
            )
            ids.append(created["id"])
        sim = f"http://127.0.0.1:{sim_port}"
        for instance_id in ids:
            running = wait_for(
                lambda i=instance_id: (
                    (d := call(base, token, f"/api/instances/{i}"))["status"] == "running" and d
                ),
                120,
                "running",
            )
            with urllib.request.urlopen(f"{sim}/v1/machines/{running['provider_id']}") as reply:
                folder = Path(json.loads(reply.read())["folder"])
            (folder / "workspace" / "model.bin").write_bytes(os.urandom(2**20))
        results: list[dict] = []
        errors: list[str] = []
        threads = [
            threading.Thread(
                target=drive, args=(base, token, sim, home, i, arguments.rounds, results, errors)
            )
            for i in ids
        ]
        stop_sampling = threading.Event()
        sampler = threading.Thread(target=sample_load, args=(stop_sampling, load_samples))
        sampler.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stop_sampling.set()
        sampler.join()
    finally:
        process.send_signal(2)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    print(f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"{len(results)} failovers completed, {len(errors)} not "
        f"({arguments.instances} instances x {arguments.rounds} rounds, "
        f"sync every {arguments.sync_seconds:g} s, boot {arguments.provision_delay:g} s)"
    )
    for line in errors[:10]:
        print("  not completed:", line)
    if load_samples:
        print(
            f"load average (1 min, every 5 s): median {statistics.median(load_samples):.2f}, "
            f"min {min(load_samples):.2f}, max {max(load_samples):.2f}"
        )
    for name in ("rto_standby_seconds", "rto_gpu_seconds", "rpo_seconds"):
        values = [r[name] for r in results if r[name] is not None]
        if values:
            print(f"{name:27} {summary(values)}")
    from_request = [
        r["queued_seconds"] + r["rto_standby_seconds"]
        for r in results
        if r["rto_standby_seconds"] is not None
    ]
    if from_request:
        print(f"{'standby, from the request':27} {summary(from_request)}")
    served = sum(1 for r in results if r["rto_standby_seconds"] is not None)
    print(f"served by the standby first: {served} of {len(results)}")
    database = home / "dumont.sqlite3"
    if database.exists() and results:
        print("where the seconds go:")
        queued = [r["queued_seconds"] for r in results]
        print(f"  {'request -> check_machine':25} {summary(queued)}")
        for name, values in phases(database).items():
            print(f"  {name:25} {summary(values)}")
    (home / "failovers.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
