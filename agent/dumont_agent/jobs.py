"""Long work the API asks for: snapshots, restores and continuous sync of the workspace.

The snapshot engine runs as a subprocess (`python -m snapshots.engine` unless the config names
another command), so the agent stays dependency-free and a crashing or killed backup never takes
the heartbeat with it. The engine prints its progress as JSON lines on stderr and its result as
JSON on stdout; the repository, its secret and any S3 credentials go in its environment, never
on its command line (other users of the machine can read command lines).

Reports wait here until a heartbeat delivers them: results are dropped only once the API has
acknowledged the beat that carried them.
"""

import json
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

logger = logging.getLogger("dumont-agent")
# restore_latest: a new machine restores the instance's newest sync (wake, failover);
# final_sync: sync now, before the machine is released (hibernation).
JOB_KINDS = ("snapshot", "restore", "restore_latest", "final_sync")
RESTORE_KINDS = ("restore", "restore_latest")
SYNC_STATE_FILE = "sync.json"


class JobFailed(Exception):
    """The engine exited with an error; the message is its one-line reason."""


class Engine:
    """Runs the snapshot engine for one repository (given by a command's arguments)."""

    def __init__(self, command: list[str]):
        self.command = command

    @staticmethod
    def environment(args: dict) -> dict[str, str]:
        env = dict(os.environ)
        env["DUMONT_SNAPSHOT_REPOSITORY"] = str(args.get("repository", ""))
        env["DUMONT_SNAPSHOT_SECRET"] = str(args.get("secret", ""))
        for key, variable in (
            ("endpoint_url", "DUMONT_SNAPSHOT_ENDPOINT_URL"),
            ("access_key_id", "AWS_ACCESS_KEY_ID"),
            ("secret_access_key", "AWS_SECRET_ACCESS_KEY"),
            ("region", "AWS_DEFAULT_REGION"),
        ):
            if args.get(key):
                env[variable] = str(args[key])
        return env

    def run(self, arguments: list[str], args: dict, on_progress: Callable[[dict], None]):
        """Run one engine command; returns its JSON result or raises JobFailed."""
        process = subprocess.Popen(
            [*self.command, "--json", "--progress-jsonl", *arguments],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.environment(args),
            text=True,
        )
        errors: list[str] = []

        def read_stderr() -> None:
            for line in process.stderr:
                if line.startswith("{"):
                    try:
                        on_progress(json.loads(line))
                        continue
                    except ValueError:
                        pass
                if line.strip():
                    errors.append(line.strip())

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        output = process.stdout.read()
        process.wait()
        reader.join(timeout=5)
        if process.returncode != 0:
            raise JobFailed(errors[-1] if errors else f"engine exited with {process.returncode}")
        try:
            return json.loads(output)
        except ValueError as error:
            raise JobFailed(f"the engine printed no JSON result ({error})") from error


class Jobs:
    """Snapshot and restore commands, one thread each, reported through the heartbeats."""

    def __init__(self, engine: Engine, workspace: Path):
        self.engine = engine
        self.workspace = workspace
        self.lock = threading.Lock()
        self.progress: dict[int, dict] = {}
        self.results: dict[int, dict] = {}
        self.restoring = 0
        self.sync: Sync | None = None  # set by the agent; final_sync uses it

    def start(self, command: dict) -> None:
        kind, args = command["kind"], command.get("args") or {}
        target = {
            "snapshot": self._snapshot,
            "restore": self._restore,
            "restore_latest": self._restore,
            "final_sync": self._final_sync,
        }[kind]
        if kind in RESTORE_KINDS:
            with self.lock:
                self.restoring += 1
        thread = threading.Thread(
            target=self._run, args=(command["id"], kind, target, args), daemon=True
        )
        thread.start()

    @property
    def is_restoring(self) -> bool:
        with self.lock:
            return self.restoring > 0

    def _run(self, command_id: int, kind: str, target, args: dict) -> None:
        def on_progress(report: dict) -> None:
            with self.lock:
                self.progress[command_id] = {"id": command_id, **_progress_fields(report)}

        try:
            ok, detail, result = True, "done", target(args, on_progress)
        except Exception as error:  # the job's failure is reported, never fatal to the agent
            ok, detail, result = False, f"{type(error).__name__}: {error}", {}
        logger.info("command %s %s: %s", command_id, kind, detail)
        with self.lock:
            self.progress.pop(command_id, None)
            self.results[command_id] = {
                "id": command_id,
                "ok": ok,
                "detail": detail[:2000],
                "result": result,
            }
            if kind in RESTORE_KINDS:
                self.restoring -= 1

    def _snapshot(self, args: dict, on_progress) -> dict:
        tags = [argument for tag in args.get("tags", []) for argument in ("--tag", tag)]
        info = self.engine.run(["backup", str(self.workspace), *tags], args, on_progress)
        return {"snapshot_id": info["id"], "summary": info.get("summary", {})}

    def _restore(self, args: dict, on_progress) -> dict:
        self.workspace.mkdir(parents=True, exist_ok=True)
        result = self.engine.run(
            ["restore", str(args["snapshot_id"]), str(self.workspace)], args, on_progress
        )
        return {"files": result.get("files", 0), "bytes": result.get("bytes", 0)}

    def _final_sync(self, args: dict, on_progress) -> dict:
        if self.sync is None or not self.sync.is_configured:
            raise JobFailed("continuous sync is not configured on this machine")
        report = self.sync.sync_once()
        if report is None or "snapshot_id" not in report:
            raise JobFailed((report or {}).get("error", "the sync did not complete"))
        return report

    def pending(self) -> tuple[list[dict], list[dict]]:
        """(progress, results) to send with the next beat."""
        with self.lock:
            return list(self.progress.values()), list(self.results.values())

    def delivered(self, results: list[dict]) -> None:
        with self.lock:
            for result in results:
                self.results.pop(result["id"], None)


def _progress_fields(report: dict) -> dict:
    fields = ("phase", "bytes_done", "bytes_total", "files_done", "files_total", "eta_seconds")
    return {name: report[name] for name in fields if name in report}


class Sync:
    """Continuous sync: an incremental snapshot of the workspace every few seconds.

    The settings (including the repository secret) are kept in a 0600 file beside the agent's
    config, so an agent restarted on the same machine goes on syncing before the API says so.
    Syncs pause while a restore writes the workspace.
    """

    def __init__(self, engine: Engine, workspace: Path, state_dir: Path, jobs: Jobs):
        self.engine = engine
        self.workspace = workspace
        self.state_file = state_dir / SYNC_STATE_FILE
        self.jobs = jobs
        self.lock = threading.Lock()
        self.running = threading.Lock()
        self.args: dict | None = None
        self.report: dict | None = None
        self.last_success_monotonic: float | None = None
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        if self.state_file.exists():
            try:
                self.configure(json.loads(self.state_file.read_text()), save=False)
            except (OSError, ValueError) as error:
                logger.warning("ignoring %s: %s", self.state_file, error)

    def configure(self, args: dict, *, save: bool = True) -> str:
        with self.lock:
            self.args = dict(args)
        if save:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                json.dump(args, handle)
        if self.thread is None:
            self.thread = threading.Thread(target=self._loop, daemon=True)
            self.thread.start()
        self.wake.set()
        return f"syncing {self.workspace} every {self.interval_seconds:g} s"

    @property
    def interval_seconds(self) -> float:
        with self.lock:
            return float((self.args or {}).get("interval_seconds", 10))

    def _loop(self) -> None:
        while not self.stop.is_set():
            self.wake.clear()
            if self.jobs.is_restoring:
                self.wake.wait(1)
                continue
            self.sync_once()
            self.wake.wait(self.interval_seconds)

    @property
    def is_configured(self) -> bool:
        with self.lock:
            return bool(self.args)

    def sync_once(self) -> dict | None:
        """One incremental snapshot of the workspace now; returns the report (None: nothing to
        sync yet). Serialised: the loop and a final sync never run the engine at once."""
        with self.running:
            return self._sync_once()

    def _sync_once(self) -> dict | None:
        with self.lock:
            args = dict(self.args or {})
        if not args or not self.workspace.is_dir():
            return None
        started, started_at = time.monotonic(), datetime.now(tz=UTC)
        tags = [argument for tag in args.get("tags", []) for argument in ("--tag", tag)]
        try:
            info = self.engine.run(
                ["backup", str(self.workspace), *tags], args, on_progress=lambda report: None
            )
        except Exception as error:
            logger.warning("sync failed: %s", error)
            with self.lock:
                self.report = {"error": str(error)[:2000], "lag_seconds": self._lag()}
                return dict(self.report)
        with self.lock:
            self.last_success_monotonic = started
            self.report = {
                "snapshot_id": info["id"],
                "synced_at": started_at.isoformat(),
                "duration_seconds": round(time.monotonic() - started, 3),
                "added_bytes": int(info.get("summary", {}).get("added_bytes", 0)),
            }
            return dict(self.report)

    def _lag(self) -> float | None:
        if self.last_success_monotonic is None:
            return None
        return round(time.monotonic() - self.last_success_monotonic, 3)

    def pending(self) -> dict | None:
        """The newest sync report not yet delivered, with the lag as of now."""
        with self.lock:
            if self.report is None:
                return None
            return {**self.report, "lag_seconds": self._lag()}

    def delivered(self, report: dict) -> None:
        with self.lock:
            if (
                self.report is not None
                and self.report.get("snapshot_id") == report.get("snapshot_id")
                and self.report.get("error") == report.get("error")
            ):
                self.report = None
