"""Machines as folders with a real `dumont-agent` process each; a ticker drives their lives."""

import contextlib
import json
import logging
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from simulator import market
from simulator.store import MachineRow, Store, now

logger = logging.getLogger("simulator")

AGENT_PACKAGE_DIR = Path(__file__).resolve().parent.parent / "agent"
TICK_SECONDS = 0.1
# A new machine idles, like a real GPU nobody uses yet: auto-hibernation can be watched in
# `make run`. Set a load with PUT /v1/machines/{id}/load to keep one busy.
DEFAULT_LOAD_PERCENT = 0.0


def agent_command() -> list[str]:
    """The installed `dumont-agent` script next to this Python, else the package from the repo."""
    script = Path(sys.executable).with_name("dumont-agent")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "dumont_agent"]


class Supervisor:
    """Starts, stops and watches agent processes; applies boot delays and interruptions."""

    def __init__(self, store: Store, home: Path, provision_delay: float, hazard_scale: float):
        self.store = store
        self.machines_dir = home / "machines"
        self.provision_delay = provision_delay
        self.hazard_scale = hazard_scale
        self.processes: dict[str, subprocess.Popen] = {}
        # The store's lock, not one of our own: the HTTP handlers take the store's lock and then
        # call us, and the ticker takes ours and then calls the store; two locks taken in both
        # orders deadlocked the simulator under concurrent interruptions (bench/failover.py).
        self.lock = store.lock
        self.stopping = threading.Event()
        self.random = random.Random()

    # --- lifecycle called by the HTTP API ---------------------------------------------------

    def folder_for(self, machine_id: str) -> Path:
        return self.machines_dir / machine_id

    def prepare(self, row: MachineRow) -> None:
        """Create the machine's folder: workspace, agent config, load profile."""
        folder = Path(row.folder)
        (folder / "workspace").mkdir(parents=True, exist_ok=True)
        env = row.spec.get("env", {})
        config = {
            "api_url": env.get("DUMONT_API_URL", ""),
            "token": env.get("DUMONT_AGENT_TOKEN", ""),
            "instance_id": env.get("DUMONT_INSTANCE_ID", row.instance_id),
            "heartbeat_seconds": float(env.get("DUMONT_HEARTBEAT_SECONDS", "5")),
            "load_file": str(folder / "load.json"),
            "gpu_count": row.gpu_count,
            "workspace": str(folder / "workspace"),
        }
        (folder / "agent.json").write_text(json.dumps(config, indent=2))
        (folder / "agent.json").chmod(0o600)
        (folder / "authorized_keys").write_text("\n".join(row.spec.get("ssh_public_keys", [])))
        if not (folder / "load.json").exists():
            self.set_load(row, DEFAULT_LOAD_PERCENT)

    def set_load(
        self,
        row: MachineRow,
        percent: float,
        *,
        interactive_sessions: int = 0,
        network_bytes_per_second: float = 0,
    ) -> None:
        """What the machine's agent reads as its GPU load and, since a simulated machine shares
        this host's terminals and network, as its logged-in users and its traffic."""
        profile = {
            "gpu_utilization_percent": percent,
            "noise_percent": 5.0,
            "interactive_sessions": interactive_sessions,
            "network_bytes_per_second": network_bytes_per_second,
        }
        (Path(row.folder) / "load.json").write_text(json.dumps(profile))

    def stop(self, row: MachineRow, state: str) -> None:
        """Kill the agent and leave the machine in `state` (stopped, interrupted, destroyed)."""
        with self.lock:
            self._kill(row.id, row.pid)
            self.store.update(row.id, state=state, pid=None)
        if state == "destroyed":
            shutil.rmtree(row.folder, ignore_errors=True)

    def start(self, row: MachineRow) -> None:
        self.store.update(row.id, state="starting", ready_at=now() + self.provision_delay)

    # --- the ticker ---------------------------------------------------------------------------

    def run(self) -> None:
        """Adopt machines left by a previous run, then tick until stopped."""
        for row in self.store.all("running"):
            self._kill(row.id, row.pid)  # an agent of a previous server run, if it survived
            self._launch(row)
        last = time.monotonic()
        while not self.stopping.wait(TICK_SECONDS):
            elapsed, last = time.monotonic() - last, time.monotonic()
            try:
                self._tick(elapsed)
            except Exception:
                logger.exception("tick failed")

    def _tick(self, elapsed_seconds: float) -> None:
        for row in self.store.all("starting"):
            if row.ready_at <= now():
                with self.lock:
                    if (current := self.store.get(row.id)) and current.state == "starting":
                        self._launch(current)
        for row in self.store.all("running"):
            hazard = 0 if row.gpu == "CPU" else market.hazard_per_hour(row.gpu) * self.hazard_scale
            if hazard and self.random.random() < 1 - math.exp(-hazard * elapsed_seconds / 3600):
                logger.info("market took back %s", row.id)
                self.stop(row, "interrupted")
                continue
            process = self.processes.get(row.id)
            if process is not None and process.poll() is not None:
                logger.info("agent of %s exited with %s; restarting", row.id, process.returncode)
                with self.lock:
                    if (current := self.store.get(row.id)) and current.state == "running":
                        self._launch(current)

    def _launch(self, row: MachineRow) -> None:
        self.prepare(row)
        folder = Path(row.folder)
        log = (folder / "agent.log").open("ab")
        # The repository root too: agents import the snapshot engine (snapshots.engine) from it.
        python_path = os.pathsep.join([str(AGENT_PACKAGE_DIR), str(AGENT_PACKAGE_DIR.parent)])
        env = {**os.environ, "PYTHONPATH": python_path, "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(
            [*agent_command(), "--config", str(folder / "agent.json")],
            cwd=folder / "workspace",
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        log.close()
        self.processes[row.id] = process
        self.store.update(row.id, state="running", pid=process.pid)

    def _kill(self, machine_id: str, pid: int | None) -> None:
        process = self.processes.pop(machine_id, None)
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        elif pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)

    def shutdown(self) -> None:
        """Stop ticking and stop every agent (the machines stay `running` for the next start)."""
        self.stopping.set()
        with self.lock:
            for machine_id in list(self.processes):
                self._kill(machine_id, None)
