"""Long work the API asks for: snapshots, restores and continuous sync of the workspace, through
the snapshot engine (see engine.py: in this process, or a command per operation).

Reports wait here until a heartbeat delivers them: results are dropped only once the API has
acknowledged the beat that carried them.
"""

import hashlib
import json
import logging
import os
import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from dumont_agent.engine import Engine, JobFailed
from dumont_agent.fence import WorkspaceFence
from dumont_agent.storage import without_access

logger = logging.getLogger("dumont-agent")
# restore_latest: a new machine restores the instance's newest sync (wake, failover);
# final_sync: sync now, before the machine is released (hibernation).
# promote / demote: a standby starts / stops serving (see Follow).
JOB_KINDS = ("snapshot", "restore", "restore_latest", "final_sync", "promote", "demote")
RESTORE_KINDS = ("restore", "restore_latest")
SYNC_STATE_FILE = "sync.json"


class Jobs:
    """Snapshot and restore commands, one thread each, reported through the heartbeats."""

    def __init__(self, engine: Engine, workspace: Path):
        self.engine = engine
        self.workspace = workspace
        self.lock = threading.Lock()
        self.progress: dict[int, dict] = {}
        self.results: dict[int, dict] = {}
        self.restoring = 0
        self.fence = WorkspaceFence(workspace)
        # Set when a job finishes, so the agent reports it without waiting a heartbeat interval
        # (a restored machine runs, a promoted standby serves, that much sooner).
        self.reported: threading.Event | None = None
        self.sync: Sync | None = None  # set by the agent; final_sync uses it
        self.follow: Follow | None = None  # set by the agent on a standby

    def start(self, command: dict) -> None:
        kind, args = command["kind"], command.get("args") or {}
        target = {
            "snapshot": self._snapshot,
            "restore": self._restore,
            "restore_latest": self._restore,
            "final_sync": self._final_sync,
            "promote": lambda args, on_progress: self.follow.promote(args),
            "demote": lambda args, on_progress: self.follow.demote(),
        }[kind]
        if kind in RESTORE_KINDS:
            with self.lock:
                busy = self.restoring > 0
                if busy:  # two restores interleaving their files would leave neither whole
                    self.results[command["id"]] = {
                        "id": command["id"],
                        "ok": False,
                        "detail": "a restore is already writing the workspace",
                        "result": {},
                    }
                else:
                    self.restoring += 1
            if busy:
                return
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
        if self.reported is not None:
            self.reported.set()  # the agent beats now: a finished job's result goes at once

    def _snapshot(self, args: dict, on_progress) -> dict:
        info = self.engine.backup(args, str(self.workspace), args.get("tags", []), on_progress)
        return {"snapshot_id": info["id"], "summary": info.get("summary", {})}

    def _restore(self, args: dict, on_progress) -> dict:
        """Restore `snapshot_id`; with an `instance_tag` (restore_latest), the instance's newest
        sync in the repository instead, which may be newer than the API last heard of."""
        self.workspace.mkdir(parents=True, exist_ok=True)
        snapshot_id, snapshot_time = str(args.get("snapshot_id", "")), ""
        if args.get("instance_tag"):
            newest = newest_sync(self.engine, args)
            if newest is not None:
                snapshot_id, snapshot_time = newest["id"], newest["time"]
        if not snapshot_id:
            raise JobFailed("no snapshot to restore")
        result = self.engine.restore(args, snapshot_id, str(self.workspace), on_progress)
        return {
            "snapshot_id": snapshot_id,
            "snapshot_time": snapshot_time,
            "files": result.get("files", 0),
            "bytes": result.get("bytes", 0),
        }

    def _final_sync(self, args: dict, on_progress) -> dict:
        """The last sync before the machine is released, of a fenced workspace (fence.py): what
        it saves is what existed. Refused while a restore writes the workspace (its files are
        not all there yet); the API then stops the machine with its disk instead."""
        if self.sync is None or not self.sync.is_configured:
            raise JobFailed("continuous sync is not configured on this machine")
        if self.is_restoring:
            raise JobFailed("a restore is still writing the workspace")
        fenced = self.fence.freeze()
        try:
            report = self.sync.sync_once(root=fenced)
            if report is None or "snapshot_id" not in report:
                raise JobFailed((report or {}).get("error", "the sync did not complete"))
        except BaseException:
            self.fence.thaw()
            raise
        return report

    def pending(self) -> tuple[list[dict], list[dict]]:
        """(progress, results) to send with the next beat."""
        with self.lock:
            return list(self.progress.values()), list(self.results.values())

    def delivered(self, results: list[dict]) -> None:
        with self.lock:
            for result in results:
                self.results.pop(result["id"], None)


def newest_sync(engine: Engine, args: dict) -> dict | None:
    """The newest snapshot tagged `sync` and the args' instance tag: {"id", "time", ...}."""
    listed = engine.snapshots(args)
    wanted = {"sync", args.get("instance_tag", "")}
    matching = [info for info in listed if wanted <= set(info.get("tags", []))]
    return max(matching, key=lambda info: info["time"]) if matching else None


def _progress_fields(report: dict) -> dict:
    fields = ("phase", "bytes_done", "bytes_total", "files_done", "files_total", "eta_seconds")
    return {name: report[name] for name in fields if name in report}


class Loop:
    """A background loop whose settings are kept in a 0600 file beside the agent's config, so an
    agent restarted on the same machine resumes it. Never the repository's access (storage.py):
    a resumed loop asks the API for it."""

    state_file: Path
    lock: threading.Lock
    wake: threading.Event
    thread: threading.Thread | None
    args: dict | None

    def configure(self, args: dict, *, save: bool = True) -> str:
        raise NotImplementedError

    def _loop(self) -> None:
        raise NotImplementedError

    def _resume(self) -> None:
        if self.state_file.exists():
            try:
                saved = json.loads(self.state_file.read_text())
                # An older agent's file holds the repository's access: rewritten without it.
                self.configure(without_access(saved), save=saved != without_access(saved))
            except (OSError, ValueError) as error:
                logger.warning("ignoring %s: %s", self.state_file, error)

    def _keep(self, args: dict, *, save: bool) -> None:
        with self.lock:
            self.args = dict(args)
        if save:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                json.dump(without_access(args), handle)
        if self.thread is None:
            self.thread = threading.Thread(target=self._loop, daemon=True)
            self.thread.start()
        self.wake.set()


def pause_after(interval: float, elapsed: float) -> float:
    """The wait after a sync that took `elapsed` seconds: syncs start every `interval`, so their
    own duration does not add to the RPO (the age of the newest sync at an interruption); at
    least a tenth of the interval, so a workspace slower to sync than that still leaves the
    machine's disk and CPU some rest between syncs."""
    return max(interval - elapsed, interval / 10)


class Sync(Loop):
    """Continuous sync: an incremental snapshot of the workspace every few seconds.

    The settings (not the repository's access) are kept in a 0600 file beside the agent's
    config, so an agent restarted on the same machine goes on syncing before the API says so.
    Syncs pause while a restore writes the workspace.
    """

    def __init__(self, engine: Engine, workspace: Path, state_dir: Path, jobs: Jobs):
        self.engine = engine
        self.workspace = workspace
        self.state_file = state_dir / SYNC_STATE_FILE
        # Set after each sync: the agent beats at once, so the API learns of it (the RPO it
        # measures is the age of the newest sync it knows) without waiting a whole interval.
        self.reported = threading.Event()
        self.jobs = jobs
        self.lock = threading.Lock()
        self.running = threading.Lock()
        self.fingerprint = ""
        self.last_snapshot_id = ""
        self.seen_fingerprint = ""  # at the last look, synced or not
        self.changed_monotonic: float | None = None  # when a look found the workspace changed
        self.args: dict | None = None
        self.report: dict | None = None
        self.last_success_monotonic: float | None = None
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self._resume()

    def configure(self, args: dict, *, save: bool = True) -> str:
        self._keep(args, save=save)
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
            started = time.monotonic()
            self.sync_once()
            self.wake.wait(pause_after(self.interval_seconds, time.monotonic() - started))

    @property
    def is_configured(self) -> bool:
        with self.lock:
            return bool(self.args)

    def sync_once(self, root: Path | None = None) -> dict | None:
        """One incremental snapshot of the workspace (or of `root`, the fenced workspace) now;
        returns the report (None: nothing to sync yet). Serialised: the loop and a final sync
        never run the engine at once."""
        with self.running:
            return self._sync_once(root or self.workspace)

    def workspace_changed(self) -> bool:
        """Whether the last two looks at the workspace found it changing (idle detection)."""
        with self.lock:
            changed = self.changed_monotonic
        window = 2 * self.interval_seconds + 1
        return changed is not None and time.monotonic() - changed < window

    def _sync_once(self, root: Path) -> dict | None:
        with self.lock:
            args = dict(self.args or {})
        if not args or not root.is_dir():
            return None
        started, started_at = time.monotonic(), datetime.now(tz=UTC)
        # Taken before the backup: a change during it makes the next one differ.
        fingerprint = tree_fingerprint(root)
        with self.lock:
            if root == self.workspace:
                if self.seen_fingerprint and fingerprint != self.seen_fingerprint:
                    self.changed_monotonic = started
                self.seen_fingerprint = fingerprint
            if fingerprint == self.fingerprint and self.last_snapshot_id:
                # Nothing changed: the last sync is still the whole workspace, as of now. Say so
                # (the API's last_sync_at, hence the RPO, is "verified current at").
                self.last_success_monotonic = started
                self.report = {
                    "snapshot_id": self.last_snapshot_id,
                    "synced_at": started_at.isoformat(),
                    "duration_seconds": round(time.monotonic() - started, 3),
                    "added_bytes": 0,
                }
                self.reported.set()
                return dict(self.report)
        try:
            info = self.engine.backup(args, str(root), args.get("tags", []), lambda report: None)
        except Exception as error:
            logger.warning("sync failed: %s", error)
            with self.lock:
                self.report = {"error": str(error)[:2000], "lag_seconds": self._lag()}
                return dict(self.report)
        with self.lock:
            self.last_success_monotonic = started
            self.fingerprint, self.last_snapshot_id = fingerprint, info["id"]
            self.report = {
                "snapshot_id": info["id"],
                "synced_at": started_at.isoformat(),
                "duration_seconds": round(time.monotonic() - started, 3),
                "added_bytes": int(info.get("summary", {}).get("added_bytes", 0)),
            }
            self.reported.set()
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

    def disable(self) -> None:
        """Stop syncing (a standby going back to following); the settings file goes too."""
        with self.running, self.lock:
            self.args = None
            self.report = None
            self.fingerprint = self.last_snapshot_id = ""
        self.state_file.unlink(missing_ok=True)

    def delivered(self, report: dict) -> None:
        with self.lock:
            if self.report is not None and all(
                self.report.get(key) == report.get(key)
                for key in ("snapshot_id", "synced_at", "error")
            ):
                self.report = None


class Follow(Loop):
    """A standby's agent: keep the workspace at the instance's newest sync, serve on demand.

    Following restores each new sync into a fresh folder and swaps it in, so files deleted on
    the GPU disappear here too. `promote` catches up one last time, stops following and starts
    syncing (users now work here); `demote` makes a final sync for the new GPU to restore and
    goes back to following.
    """

    STATE_FILE = "follow.json"

    def __init__(
        self,
        engine: Engine,
        workspace: Path,
        state_dir: Path,
        sync: Sync,
        fence: WorkspaceFence | None = None,
    ):
        self.engine = engine
        self.workspace = workspace
        self.state_file = state_dir / self.STATE_FILE
        self.sync = sync
        self.fence = fence or WorkspaceFence(workspace)
        self.lock = threading.Lock()
        self.step_lock = threading.Lock()
        self.args: dict | None = None
        self.is_serving = False
        self.restored_id = ""
        self.restored_time = ""  # when the sync now here was taken
        self.report: dict | None = None
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None
        self._resume()

    def configure(self, args: dict, *, save: bool = True) -> str:
        self._keep(args, save=save)
        return f"following {args.get('instance_tag', '?')}"

    def _loop(self) -> None:
        while True:
            self.wake.clear()
            with self.lock:
                interval = float((self.args or {}).get("interval_seconds", 10))
                active = self.args is not None and not self.is_serving
            if active:
                try:
                    self.step()
                except Exception as error:  # a failed restore is retried next time
                    logger.warning("follow failed: %s", error)
            self.wake.wait(interval)

    def step(self) -> str:
        """Restore the newest sync if it is not the one here; returns the id now here."""
        with self.step_lock:
            with self.lock:
                args = dict(self.args or {})
            found = newest_sync(self.engine, args)
            newest = found["id"] if found else ""
            if found:
                self.restored_time = found["time"]
            if not newest or newest == self.restored_id:
                return self.restored_id
            fresh = self.workspace.with_name(self.workspace.name + ".next")
            _remove(fresh)
            self.engine.restore(args, newest, str(fresh), lambda report: None)
            old = self.workspace.with_name(self.workspace.name + ".old")
            _remove(old)
            if self.fence.is_up:
                self.fence.discard()  # fenced by a demote: its final sync is on the GPU now
            elif self.workspace.exists():
                self.workspace.rename(old)
            fresh.rename(self.workspace)
            _remove(old)
            with self.lock:
                self.restored_id = newest
                self.report = {
                    "snapshot_id": newest,
                    "restored_at": datetime.now(tz=UTC).isoformat(),
                }
            return newest

    def promote(self, args: dict) -> dict:
        """Catch up on the newest sync, then serve: users work here, and it is synced."""
        snapshot_id = self.step()
        if self.fence.is_up:
            self.fence.thaw()  # still fenced by the last demote, whose sync is the newest
        with self.lock:
            self.is_serving = True
        interval = (self.args or {}).get("interval_seconds", 10)
        self.sync.configure({**args, "interval_seconds": interval})
        return {"snapshot_id": snapshot_id, "snapshot_time": self.restored_time}

    def demote(self) -> dict:
        """A final sync of what users did here (the new GPU restores it); follow again.

        The workspace is fenced for the sync (fence.py), and stays fenced: users are still sent
        here until the GPU runs, and a write here now would be lost without a word. It goes when
        the GPU's first sync is followed (`step`), or comes back if this standby serves again
        before that (a second interruption: the fenced tree is that final sync)."""
        fenced = self.fence.freeze()
        try:
            report = self.sync.sync_once(root=fenced) or {}
        except BaseException:
            self.fence.thaw()
            raise
        self.sync.disable()
        if "snapshot_id" not in report:
            self.fence.thaw()
            raise JobFailed(report.get("error", "the final sync did not complete"))
        with self.lock:
            self.is_serving = False
            self.restored_id = report["snapshot_id"]  # the workspace is that sync already
        self.wake.set()
        return {"snapshot_id": report["snapshot_id"]}

    def pending(self) -> dict | None:
        with self.lock:
            return dict(self.report) if self.report else None

    def delivered(self, report: dict) -> None:
        with self.lock:
            if self.report == report:
                self.report = None


def tree_fingerprint(root: Path) -> str:
    """A digest of every entry's path, type, size, mtime, inode and mode (no file is read):
    equal digests mean the engine would find nothing to back up."""
    digest = hashlib.blake2b(digest_size=16)
    for folder, directories, files in os.walk(root):
        directories.sort()
        for name in sorted(directories + files):
            path = os.path.join(folder, name)
            try:
                stat = os.lstat(path)
            except OSError:
                continue
            target = os.readlink(path) if os.path.islink(path) else ""
            line = f"{path}\0{stat.st_mode}\0{stat.st_size}\0{stat.st_mtime_ns}\0{stat.st_ino}"
            digest.update(f"{line}\0{target}\n".encode(errors="surrogateescape"))
    return digest.hexdigest()


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
