"""`dumont-agent`: heartbeat loop with backoff; exits 0 on SIGTERM, 3 when its token is refused."""

import argparse
import contextlib
import json
import logging
import os
import random
import shlex
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from dumont_agent import __version__, commands
from dumont_agent.activity import ActivityProbe
from dumont_agent.engine import make_engine
from dumont_agent.gpu import make_reader
from dumont_agent.jobs import JOB_KINDS, Follow, Jobs, Sync

logger = logging.getLogger("dumont-agent")
MAX_BACKOFF_SECONDS = 60.0


@dataclass
class Config:
    api_url: str
    token: str
    instance_id: str
    heartbeat_seconds: float = 5.0
    load_file: Path | None = None
    gpu_count: int = 1
    unauthorized_exit_seconds: float = 120.0
    workspace: Path = field(default_factory=Path.cwd)
    # The snapshot engine: a command line, else (the default) the library in this process.
    engine_command: tuple[str, ...] = ()
    state_dir: Path = field(
        default_factory=lambda: Path.home() / ".dumont-agent"
    )  # sync settings survive restarts here


def load_config(path: str | None) -> Config:
    data = json.loads(Path(path).read_text()) if path else {}
    env = os.environ

    def pick(key: str, variable: str, default=None):
        return data.get(key) or env.get(variable) or default

    config = Config(
        api_url=str(pick("api_url", "DUMONT_API_URL", "")).rstrip("/"),
        token=str(pick("token", "DUMONT_AGENT_TOKEN", "")),
        instance_id=str(pick("instance_id", "DUMONT_INSTANCE_ID", "")),
        heartbeat_seconds=float(pick("heartbeat_seconds", "DUMONT_HEARTBEAT_SECONDS", 5)),
        load_file=Path(p) if (p := pick("load_file", "DUMONT_LOAD_FILE")) else None,
        gpu_count=int(pick("gpu_count", "DUMONT_GPU_COUNT", 1)),
        unauthorized_exit_seconds=float(
            pick("unauthorized_exit_seconds", "DUMONT_UNAUTHORIZED_EXIT_SECONDS", 120)
        ),
        workspace=Path(pick("workspace", "DUMONT_WORKSPACE", os.getcwd())),
    )
    engine = pick("engine_command", "DUMONT_ENGINE_COMMAND")
    if engine:
        config.engine_command = tuple(engine if isinstance(engine, list) else shlex.split(engine))
    state_dir = pick("state_dir", "DUMONT_STATE_DIR") or (Path(path).parent if path else None)
    if state_dir:
        config.state_dir = Path(state_dir)
    if not config.api_url or not config.token:
        raise ValueError("api_url and token are required (config file or DUMONT_* variables)")
    return config


class Refused(Exception):
    """The API refused the token (401/403)."""


class Agent:
    def __init__(self, config: Config):
        self.config = config
        self.reader = make_reader(config.load_file, config.gpu_count)
        self.started = time.monotonic()
        self.results: list[dict] = []
        self.stop = threading.Event()
        self.interval = config.heartbeat_seconds
        engine = make_engine(list(config.engine_command), config)
        self.jobs = Jobs(engine, config.workspace)
        self.sync = Sync(engine, config.workspace, config.state_dir, self.jobs)
        self.jobs.sync = self.sync
        self.jobs.reported = self.sync.reported  # either news ends the wait for the next beat
        self.follow = Follow(
            engine, config.workspace, config.state_dir, self.sync, fence=self.jobs.fence
        )
        self.jobs.follow = self.follow
        self.activity = ActivityProbe(config.load_file, self.sync.workspace_changed)
        if self.jobs.fence.is_up:
            # A final sync fenced the workspace, then the machine was stopped instead of
            # released (the sync failed or never reported): it is started again to be used.
            logger.info("workspace fenced by an earlier final sync: thawing it")
            self.jobs.fence.thaw()

    def beat(self) -> dict:
        reading = self.reader.read()
        body = {
            "gpu_utilization_percent": reading.utilization_percent,
            "gpu_memory_used_mb": reading.memory_used_mb,
            "gpu_count": reading.gpu_count,
            "source": reading.source,
            "agent_version": __version__,
            "uptime_seconds": round(time.monotonic() - self.started, 1),
            "activity": self.activity.read(),
        }
        progress, job_results = self.jobs.pending()
        results = self.results + job_results
        if results:
            body["command_results"] = results
        if progress:
            body["command_progress"] = progress
        sync = self.sync.pending()
        if sync:
            body["sync"] = sync
        follow = self.follow.pending()
        if follow:
            body["follow"] = follow
        request = urllib.request.Request(
            f"{self.config.api_url}/api/agent/heartbeat",
            data=json.dumps(body).encode(),
            headers={
                "Authorization": f"Bearer {self.config.token}",
                "Content-Type": "application/json",
                "User-Agent": f"dumont-agent/{__version__}",
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                reply = json.loads(response.read())
        except urllib.error.HTTPError as error:
            if error.code in (401, 403):
                raise Refused(str(error.code)) from error
            raise
        self.results = []  # delivered
        self.jobs.delivered(job_results)
        if sync:
            self.sync.delivered(sync)
        if follow:
            self.follow.delivered(follow)
        return reply

    def handle(self, reply: dict) -> None:
        self.interval = float(reply.get("interval_seconds") or self.config.heartbeat_seconds)
        for command in reply.get("commands", []):
            if command.get("kind") in JOB_KINDS:
                self.jobs.start(command)  # reported by later beats, with progress
                continue
            if command.get("kind") == "sync":
                ok, detail = True, self.sync.configure(command.get("args") or {})
            elif command.get("kind") == "follow":
                ok, detail = True, self.follow.configure(command.get("args") or {})
            else:
                ok, detail = commands.run(command.get("kind", ""), command.get("args") or {})
            logger.info("command %s %s: %s", command.get("id"), command.get("kind"), detail)
            self.results.append({"id": command["id"], "ok": ok, "detail": detail[:2000]})
            if ok and command.get("kind") == "shutdown":
                self._report_then_stop()

    def _report_then_stop(self) -> None:
        # The shutdown happens even if this report fails; the API then sees the command unanswered.
        with contextlib.suppress(Exception):
            self.beat()
        self.stop.set()

    def run(self) -> int:
        failures = 0
        refused_since: float | None = None
        logger.info(
            "agent %s for instance %s on %s",
            __version__,
            self.config.instance_id,
            self.config.api_url,
        )
        while not self.stop.is_set():
            try:
                self.handle(self.beat())
                failures, refused_since = 0, None
                wait = self.interval
            except Refused as error:
                refused_since = refused_since or time.monotonic()
                if time.monotonic() - refused_since >= self.config.unauthorized_exit_seconds:
                    logger.error("the API refuses this agent's token (%s); exiting", error)
                    return 3
                failures += 1
                wait = self._backoff(failures)
            except Exception as error:  # network, 5xx, 429, bad JSON: retry with backoff
                failures += 1
                wait = self._backoff(failures)
                logger.warning("heartbeat failed (%s); retrying in %.1f s", error, wait)
            self._sleep(wait)
        return 0

    def _sleep(self, seconds: float) -> None:
        """Until the next beat: `seconds`, or sooner when a sync or a job has news for the API."""
        deadline = time.monotonic() + seconds
        while not self.stop.is_set() and (left := deadline - time.monotonic()) > 0:
            if self.sync.reported.wait(min(left, 0.5)):
                self.sync.reported.clear()
                return

    def _backoff(self, failures: int) -> float:
        base = min(MAX_BACKOFF_SECONDS, self.config.heartbeat_seconds * 2 ** min(failures, 10))
        return random.uniform(base / 2, base)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dumont-agent", description=__doc__)
    parser.add_argument("--config", help="JSON config file (else DUMONT_* variables)")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        agent = Agent(load_config(arguments.config))
    except (OSError, ValueError) as error:
        print(f"dumont-agent: {error}", file=sys.stderr)
        return 2

    def stop(signum, frame):
        agent.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return agent.run()


if __name__ == "__main__":
    sys.exit(main())
