"""Load on the production-shaped stack: N tenants using the instance API, plus agents beating.

On loopback, per run: a fresh database `dumont_load` (a copy of a migrated template), N tenants
(each with an API token and $10,000 of credit on top of the Pro trial), one extra tenant with
A running instances whose agent tokens the load client holds; then the stack as README's
"Running in production" starts it: uvicorn with W workers (`--lifespan off`), a Celery worker,
beat, and the simulator as the GPU provider (its machines run real `dumont-agent`s). Postgres
and Redis are this machine's. The scenario (a separate client process, a minimal keep-alive
HTTP/1.1 client on asyncio) runs for D seconds:

- each tenant is one closed loop without think time: GET /api/instances, then
  GET /api/instances/{id} of one of its instances; every CHURN seconds it either creates an
  instance (POST /api/instances, while it has fewer than CAP) or deletes its oldest
  (DELETE /api/instances/{id}), so provisioning, agents starting and deletion run all along;
- each of the A agents POSTs /api/agent/heartbeat every 5 s (AGENT_HEARTBEAT_SECONDS), at a
  random phase, on its own connection (the real agents of created instances beat as well).

Rate limits are raised for the bench (THROTTLE_TOKEN, THROTTLE_ADDRESS = 1000000/min): every
tenant and agent comes from 127.0.0.1. Billing is not touched (no top-ups), so no fake Stripe.
Prints per run and endpoint: requests/s, p50/p95/p99 ms, statuses; CPU seconds per component
(web, worker, simulator + agents, Postgres backends of this database, the client) and the
load average; with --profile, a py-spy dump of where one web worker spends its time.
Run (Postgres and Redis on this machine, as for `make test`):
    .venv/bin/python bench/load.py [--runs 3] [--seconds 60] [--tenants 20] [--agents 300]
"""

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE = os.environ.get("BENCH_DATABASE", "dumont_load")
TEMPLATE = f"{DATABASE}_template"
POSTGRES = "postgres://postgres@127.0.0.1:5432"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
HEARTBEAT_SECONDS = 5
PSQL = ["-h", "127.0.0.1", "-U", "postgres"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def environment(home: Path, port: int = 8000, sim_port: int = 8001) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": f"{POSTGRES}/{DATABASE}",
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": "bench-only",
        "DUMONT_HOME": str(home),
        "LOG_LEVEL": "WARNING",
        "THROTTLE_TOKEN": "1000000/min",
        "THROTTLE_ADDRESS": "1000000/min",
        "SIM_PROVIDER_URL": f"http://127.0.0.1:{sim_port}",
        "DUMONT_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "STRIPE_API_BASE": "http://127.0.0.1:9",  # nothing listens: the scenario never pays
        "PYTHONUNBUFFERED": "1",
    }


def manage(home: Path, *arguments: str, capture: bool = False) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=ROOT,
        env=environment(home),
        check=True,
        stdout=subprocess.PIPE if capture else None,
        text=True,
    ).stdout


def fresh_database(home: Path) -> None:
    """A migrated template once, then a copy of it for each run (createdb -T is a file copy)."""
    subprocess.run(["dropdb", *PSQL, "--if-exists", DATABASE], check=True)
    exists = subprocess.run(
        ["psql", *PSQL, "-tAc", f"select 1 from pg_database where datname = '{TEMPLATE}'"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not exists:
        subprocess.run(["createdb", *PSQL, DATABASE], check=True)
        manage(home, "migrate", "-v", "0")
        subprocess.run(["psql", *PSQL, "-qc", f"alter database {DATABASE} rename to {TEMPLATE}"])
    subprocess.run(["createdb", *PSQL, "-T", TEMPLATE, DATABASE], check=True)
    subprocess.run(
        [sys.executable, "-c", f"import redis; redis.Redis.from_url('{REDIS_URL}').flushdb()"],
        check=True,
    )


SEED = """
import json
from django.utils import timezone
from accounts.services import sign_up
from billing import ledger
from billing.models import LedgerEntry
from instances.agent_tokens import agent_token, hash_agent_token
from instances.models import Instance
tokens = []
for n in range({tenants}):
    result = sign_up(email=f"load{{n}}@example.com", password="a long bench passphrase",
                     organization=f"Load {{n}}", ip=None)
    ledger.post(result.tenant, LedgerEntry.Kind.ADMIN_GRANT, 10_000_000_000,
                idempotency_key=f"load-{{n}}")
    tokens.append(result.token_plaintext)
fleet = sign_up(email="fleet@example.com", password="a long bench passphrase",
                organization="Fleet", ip=None).tenant
ledger.post(fleet, LedgerEntry.Kind.ADMIN_GRANT, 10_000_000_000, idempotency_key="fleet")
agent_tokens = []
rows = []
for n in range({agents}):
    instance = Instance(tenant=fleet, name=f"fleet-{{n}}", gpu="RTX 4090", region="US-East",
                        max_price_micros=500000, status=Instance.Status.RUNNING,
                        status_changed_at=timezone.now())
    instance.provision_key = f"{{instance.id}}-1"
    token = agent_token(instance.id, instance.provision_key)
    instance.agent_token_hash = hash_agent_token(token)
    rows.append(instance)
    agent_tokens.append(token)
Instance.objects.bulk_create(rows)
print(json.dumps({{"tenants": tokens, "agents": agent_tokens}}))
"""


def seed(home: Path, tenants: int, agents: int) -> dict[str, list[str]]:
    script = SEED.format(tenants=tenants, agents=agents)
    output = manage(home, "shell", "-c", script, capture=True)
    return json.loads(output.strip().splitlines()[-1])


# ---------------------------------------------------------------- the load client


class Connection:
    """One keep-alive HTTP/1.1 connection (a client library would cost more CPU per request
    than the server under test, on the same two cores)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def request(self, method: str, path: str, token: str, body: dict | None = None):
        if self.writer is not None:
            try:
                return await self._exchange(method, path, token, body)
            except (OSError, asyncio.IncompleteReadError, IndexError):
                # uvicorn closes a connection idle for 5 s (--timeout-keep-alive), as long as an
                # agent's interval: open a new one, as an HTTP client's pool would
                self.writer.close()
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return await self._exchange(method, path, token, body)

    async def _exchange(self, method: str, path: str, token: str, body: dict | None):
        payload = json.dumps(body).encode() if body is not None else b""
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        self.writer.write(head.encode() + payload)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        closing = False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                closing = True
        data = await self.reader.readexactly(length)
        if closing:
            self.writer.close()
            self.writer = None
        return status, data


class Recorder:
    def __init__(self):
        self.latencies: dict[str, list[float]] = {}
        self.statuses: dict[str, dict[int, int]] = {}
        self.failures: list[str] = []

    async def call(self, connection, name, method, path, token, body=None, *, until=None):
        started = time.perf_counter()
        try:
            status, data = await connection.request(method, path, token, body)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as error:
            connection.writer = None
            self.failures.append(f"{name}: {error!r}")
            return 0, b""
        if until is None or time.monotonic() < until:
            self.latencies.setdefault(name, []).append(time.perf_counter() - started)
            counts = self.statuses.setdefault(name, {})
            counts[status] = counts.get(status, 0) + 1
        if status >= 500 and len(self.failures) < 20:
            self.failures.append(f"{name}: {status} {data[:200]!r}")
        return status, data


async def tenant_loop(recorder, host, port, token, deadline, churn_seconds, cap):
    connection = Connection(host, port)
    mine: list[str] = []
    next_churn = time.monotonic() + random.uniform(0, churn_seconds)
    while time.monotonic() < deadline:
        if time.monotonic() >= next_churn:
            next_churn += churn_seconds
            if len(mine) < cap:
                status, data = await recorder.call(
                    connection,
                    "POST /api/instances",
                    "POST",
                    "/api/instances",
                    token,
                    {"gpu": "RTX 4090", "max_price": 5.0},
                    until=deadline,
                )
                if status == 202:
                    mine.append(json.loads(data)["id"])
            else:
                oldest = mine.pop(0)
                await recorder.call(
                    connection,
                    "DELETE /api/instances/{id}",
                    "DELETE",
                    f"/api/instances/{oldest}",
                    token,
                    until=deadline,
                )
        await recorder.call(
            connection, "GET /api/instances", "GET", "/api/instances", token, until=deadline
        )
        if mine:
            await recorder.call(
                connection,
                "GET /api/instances/{id}",
                "GET",
                f"/api/instances/{random.choice(mine)}",
                token,
                until=deadline,
            )


async def agent_loop(recorder, host, port, token, deadline):
    connection = Connection(host, port)
    await asyncio.sleep(random.uniform(0, HEARTBEAT_SECONDS))
    beat_at = time.monotonic()
    while beat_at < deadline:
        body = {"gpu_utilization_percent": random.uniform(40, 95)}
        await recorder.call(
            connection,
            "POST /api/agent/heartbeat",
            "POST",
            "/api/agent/heartbeat",
            token,
            body,
            until=deadline,
        )
        beat_at += HEARTBEAT_SECONDS
        await asyncio.sleep(max(0.0, beat_at - time.monotonic()))


async def scenario(url, tokens, seconds, churn_seconds, cap) -> dict:
    host, port = url.removeprefix("http://").split(":")
    recorder = Recorder()
    began = time.monotonic()
    deadline = began + seconds
    await asyncio.gather(
        *(
            tenant_loop(recorder, host, int(port), token, deadline, churn_seconds, cap)
            for token in tokens["tenants"]
        ),
        *(agent_loop(recorder, host, int(port), token, deadline) for token in tokens["agents"]),
    )
    elapsed = seconds
    endpoints = {}
    for name, latencies in sorted(recorder.latencies.items()):
        latencies.sort()
        endpoints[name] = {
            "per_second": len(latencies) / elapsed,
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p95_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))],
            "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            "statuses": recorder.statuses[name],
        }
    return {"endpoints": endpoints, "failures": recorder.failures[:20]}


# ---------------------------------------------------------------- the stack


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    # utime, stime, and the waited-for children's (agents that ended)
    return sum(int(value) for value in fields[11:15]) / ticks


def descendants(pid: int) -> list[int]:
    found = [pid]
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        found += descendants(int(child))
    return found


def tree_cpu(pid: int) -> float:
    try:
        return sum(cpu_seconds(each) for each in descendants(pid))
    except FileNotFoundError:
        return cpu_seconds(pid)


def backend_pids() -> list[int]:
    output = subprocess.run(
        ["psql", *PSQL, "-tAc", f"select pid from pg_stat_activity where datname = '{DATABASE}'"],
        capture_output=True,
        text=True,
    ).stdout
    return [int(line) for line in output.split()]


def sample_database(stop_at: float) -> dict:
    """pg_stat_activity of this database twice a second: how many backends are running a
    statement, and on what they wait (no pg_stat_statements: it needs a server restart)."""
    active, samples, waits = 0, 0, {}
    while time.monotonic() < stop_at:
        rows = subprocess.run(
            [
                "psql",
                *PSQL,
                "-tAF",
                "|",
                "-c",
                "select coalesce(wait_event_type, 'CPU'), "
                "left(regexp_replace(query, '\\s+', ' ', 'g'), 70) from pg_stat_activity "
                f"where datname = '{DATABASE}' and state = 'active' and pid <> pg_backend_pid()",
            ],
            capture_output=True,
            text=True,
        ).stdout.splitlines()
        samples += 1
        active += len(rows)
        for row in rows:
            waits[row] = waits.get(row, 0) + 1
        time.sleep(0.5)
    top = sorted(waits.items(), key=lambda item: -item[1])[:8]
    return {"mean_active_backends": active / max(samples, 1), "top_active": top}


def wait_ready(url: str) -> None:
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"{url}/api/health/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("web never became ready")


def start(name: str, arguments: list[str], env: dict, log_dir: Path) -> subprocess.Popen:
    log = (log_dir / f"{name}.log").open("w")
    return subprocess.Popen(
        [sys.executable, *arguments],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def one_run(arguments) -> dict:
    home = Path(tempfile.mkdtemp(prefix="dumont-load-"))
    fresh_database(home)
    tokens = seed(home, arguments.tenants, arguments.agents)
    port, sim_port = free_port(), free_port()
    env = environment(home, port, sim_port)
    metrics = home / "prometheus"
    metrics.mkdir()
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
    processes = {
        "simulator": start(
            "simulator",
            [
                "-m",
                "simulator",
                "--home",
                str(home),
                "--port",
                str(sim_port),
                "--provision-delay",
                str(arguments.provision_delay),
            ],
            env,
            home,
        ),
        "web": start(
            "web",
            [
                "-m",
                "uvicorn",
                "dumont.asgi:application",
                "--port",
                str(port),
                "--workers",
                str(arguments.web_workers),
                "--lifespan",
                "off",
                "--no-access-log",
            ],
            env,
            home,
        ),
        "worker": start(
            "worker",
            [
                "-m",
                "celery",
                "-A",
                "dumont",
                "worker",
                "--loglevel",
                "WARNING",
                "--concurrency",
                str(arguments.worker_concurrency),
            ],
            env,
            home,
        ),
        "beat": start("beat", ["-m", "celery", "-A", "dumont", "beat", "-l", "WARNING"], env, home),
    }
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url)
        time.sleep(3)  # the worker connects to the broker
        before = {name: tree_cpu(process.pid) for name, process in processes.items()}
        backends = {pid: cpu_seconds(pid) for pid in backend_pids()}
        load_before = os.getloadavg()
        client = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--client",
                url,
                "--seconds",
                str(arguments.seconds),
                "--churn-seconds",
                str(arguments.churn_seconds),
                "--cap",
                str(arguments.cap),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        client.stdin.write(json.dumps(tokens))
        client.stdin.close()
        profile = None
        database = sample_database(time.monotonic() + arguments.seconds * 0.8)
        if arguments.profile and shutil.which("py-spy", path=str(Path(sys.executable).parent)):
            # uvicorn's children: a multiprocessing resource tracker, then the workers
            worker_pid = next(
                pid
                for pid in descendants(processes["web"].pid)
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
            )
            profile = subprocess.run(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--pid",
                    str(worker_pid),
                    "--duration",
                    "10",
                    "--rate",
                    "20",
                    "--format",
                    "raw",
                    "--output",
                    str(home / "web.txt"),
                    "--nonblocking",
                ],
                capture_output=True,
                text=True,
            ).returncode
        result = json.loads(client.stdout.read())
        client.wait()
        load_after = os.getloadavg()
        for pid in backend_pids():
            backends.setdefault(pid, 0.0)
        cpu = {
            name: round(tree_cpu(process.pid) - before[name], 1)
            for name, process in processes.items()
        }
        cpu["postgres (this database)"] = round(
            sum(cpu_seconds(pid) - start_cpu for pid, start_cpu in backends.items()), 1
        )
        result.update(
            cpu_seconds=cpu,
            loadavg_before=[round(value, 2) for value in load_before],
            loadavg_after=[round(value, 2) for value in load_after],
            database=database,
            profile=str(home / "web.txt") if profile == 0 else None,
            home=str(home),
        )
        return result
    finally:
        for process in processes.values():
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--agents", type=int, default=300)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument("--churn-seconds", type=float, default=15)
    parser.add_argument("--cap", type=int, default=2, help="live instances per tenant")
    parser.add_argument("--provision-delay", type=float, default=3)
    parser.add_argument("--profile", action="store_true", help="py-spy one web worker")
    parser.add_argument("--client")
    arguments = parser.parse_args()
    if arguments.client:
        tokens = json.loads(sys.stdin.read())
        result = asyncio.run(
            scenario(
                arguments.client, tokens, arguments.seconds, arguments.churn_seconds, arguments.cap
            )
        )
        result["client_cpu_seconds"] = round(time.process_time(), 1)
        print(json.dumps(result))
        return
    runs = []
    for _ in range(arguments.runs):
        run = one_run(arguments)
        runs.append(run)
        print(json.dumps(run), flush=True)
    names = sorted({name for run in runs for name in run["endpoints"]})
    summary = {}
    for name in names:
        present = [run["endpoints"][name] for run in runs if name in run["endpoints"]]
        summary[name] = {
            figure: round(statistics.median(each[figure] for each in present), 1)
            for figure in ("per_second", "p50_ms", "p95_ms", "p99_ms")
        }
    total = [sum(each["per_second"] for each in run["endpoints"].values()) for run in runs]
    print(
        json.dumps(
            {
                "median": summary,
                "total_per_second": [round(value, 1) for value in total],
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
