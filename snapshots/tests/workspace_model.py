"""A model of what a customer's workspace must hold, and a driver that checks the real platform
against it through random interleavings of what users do.

The invariants, checked after every step on every instance:
- **Acknowledged writes survive.** A write is acknowledged once a completed sync, a hibernation
  or a failover covers it (a snapshot covers it for its restores). After a later restore, wake
  or failover each path holds, byte for byte, its acknowledged content or a content written to
  it since (a failover loses at most what the newest sync had not covered: its RPO); a path
  untouched since its acknowledgement is exactly there.
- **Running means complete.** An instance seen `running` holds its whole workspace: what was
  restored into it and every write since, exactly (the driver is its only writer).
- **No temporary file of ours is ever workspace content** (restore temporaries, the fence).
- **Nothing fails silently.** Every step ends in the status it asked for; an instance in
  `error` is a violation, and so is a write the user saw succeed that is missing later (writes
  that race a hibernation are either refused or kept).

The same driver runs bounded and seeded in the test suite (snapshots/tests/
test_workspace_model.py) and long in `bench/workspace_soak.py`. It uses only what a customer
has: the public API, the files of the machine's workspace, and the simulator's market controls.
"""

import itertools
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

Content = dict[str, bytes]

# The engine's restore temporaries (`.NAME.restore-1a2b3c4d`) and the hibernation fence.
OUR_TEMPORARIES = re.compile(r"^\..+\.restore-[0-9a-f]{8}$|^\..+\.fenced$")


class Violation(AssertionError):
    """An invariant does not hold: the message says which, on which instance, after what."""


@dataclass
class Platform:
    """How the driver reaches the system under test."""

    # (method, path, JSON body) -> (HTTP status, JSON answer), as the instance's owner.
    api: Callable[[str, str, dict | None], tuple[int, dict]]
    # An instance's JSON (with `provider_id`) -> its machine's workspace folder.
    workspace_of: Callable[[dict], Path]
    # The market takes a machine back (the simulator's `POST /v1/machines/{id}/interrupt`).
    take_machine: Callable[[str], None]
    # One reconcile pass, where no beat runs one (the tests); None: the platform's beat does.
    reconcile: Callable[[], None] | None = None
    timeout_seconds: float = 180.0


@dataclass
class Workspace:
    """The model of one instance: its status and the states its workspace may hold."""

    instance_id: str
    status: str  # "running" or "hibernated"
    acknowledged: Content
    # States written since the acknowledgement, oldest first; the last is the current one.
    since: list[Content] = field(default_factory=list)
    # A program that wrote while the instance hibernated: its log and the writes it saw succeed.
    writer_log: tuple[str, int] | None = None

    @property
    def current(self) -> Content:
        return self.since[-1] if self.since else self.acknowledged

    def wrote(self, content: Content) -> None:
        self.since.append(dict(content))

    def acknowledge(self, content: Content | None = None) -> None:
        self.acknowledged = dict(self.current if content is None else content)
        self.since = []


@dataclass
class Report:
    seed: int
    steps: int = 0
    operations: dict[str, int] = field(default_factory=dict)
    interleavings: set[tuple[str, str]] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)


def read_workspace(root: Path) -> Content:
    """Every file under root (symlinks and empty folders are not modelled)."""
    found: Content = {}
    for folder, directories, files in os.walk(root):
        for name in directories + files:
            if OUR_TEMPORARIES.match(name):
                found[f"!temporary:{Path(folder, name).relative_to(root)}"] = b""
        for name in files:
            path = Path(folder, name)
            if not path.is_symlink():
                found[str(path.relative_to(root))] = path.read_bytes()
    return found


def _describe(expected: Content, found: Content) -> str:
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    differ = sorted(path for path in set(expected) & set(found) if expected[path] != found[path])
    parts = []
    for label, paths in (("missing", missing), ("unexpected", extra), ("different", differ)):
        if paths:
            more = f" and {len(paths) - 5} more" if len(paths) > 5 else ""
            parts.append(f"{len(paths)} {label}: {', '.join(paths[:5])}{more}")
    return "; ".join(parts) or "identical"


# A user's program that keeps writing while the instance hibernates: it appends numbered lines
# and prints each number once the write returned; it stops at the first refused write.
WRITER = """
import itertools, sys, time
path = sys.argv[1]
for number in itertools.count():
    try:
        with open(path, "a") as handle:
            handle.write(f"{number}\\n")
    except OSError as error:
        print(f"refused {type(error).__name__}", flush=True)
        break
    print(number, flush=True)
    time.sleep(0.002)
"""


class WorkspaceChecker:
    """Random user operations on the platform, each followed by the invariants' check."""

    MAX_INSTANCES = 2  # what a trial may hold at once (hibernated ones count)

    def __init__(
        self,
        platform: Platform,
        seed: int,
        *,
        tree_files: int = 1000,
        large_file_bytes: int = 2 * 2**20,
        create_body: dict | None = None,
        say: Callable[[str], None] = lambda line: None,
    ):
        self.platform = platform
        self.random = random.Random(seed)
        self.tree_files = tree_files
        self.large_file_bytes = large_file_bytes
        self.create_body = create_body or {"gpu": "RTX 4090", "max_price": 2.0}
        self.say = say
        self.report = Report(seed)
        self.workspaces: dict[str, Workspace] = {}
        self.snapshots: list[tuple[str, Content]] = []
        self.names = itertools.count()
        self.last_operation = "start"

    # --- the run ----------------------------------------------------------------------------

    def run(self, steps: int) -> Report:
        for _ in range(steps):
            self.step()
        return self.report

    def step(self) -> str:
        # An operation not tried yet is six times as likely: a short run still mixes them all.
        choices = [
            (name, weight * (1 if name in self.report.operations else 6))
            for name, weight in self.OPERATIONS
            if self._enabled(name)
        ]
        name = self.random.choices([c[0] for c in choices], [c[1] for c in choices])[0]
        started = time.monotonic()
        detail = getattr(self, f"op_{name}")()
        line = f"step {self.report.steps + 1}: {name} {detail} ({time.monotonic() - started:.1f} s)"
        self.report.log.append(line)
        self.say(line)
        self.report.steps += 1
        self.report.operations[name] = self.report.operations.get(name, 0) + 1
        self.report.interleavings.add((self.last_operation, name))
        self.last_operation = name
        self.check_all(after=line)
        return name

    OPERATIONS = (
        ("create", 2),
        ("write_small", 6),
        ("write_large", 2),
        ("write_tree", 1),
        ("overwrite", 3),
        ("delete_file", 2),
        ("rename_file", 2),
        ("sync", 3),
        ("snapshot", 2),
        ("restore", 2),
        ("hibernate", 2),
        ("hibernate_while_writing", 1),
        ("wake", 3),
        ("interrupt", 2),
        ("interrupt_during_recovery", 1),
        ("delete_instance", 1),
    )

    def _enabled(self, name: str) -> bool:
        running = self._with_status("running")
        room = len(self.workspaces) < self.MAX_INSTANCES
        if name == "create":
            return room
        if name == "restore":
            return room and bool(self.snapshots)
        if name == "wake":
            return bool(self._with_status("hibernated"))
        if name == "delete_instance":
            return bool(self.workspaces)
        if name in ("overwrite", "delete_file", "rename_file"):
            return any(self.workspaces[i].current for i in running)
        return bool(running)

    def _with_status(self, status: str) -> list[str]:
        # In creation order, not by id (ids are random): a seed always makes the same choices.
        return [i for i, w in self.workspaces.items() if w.status == status]

    def _pick(self, status: str = "running", *, with_files: bool = False) -> Workspace:
        ids = [i for i in self._with_status(status) if not with_files or self.workspaces[i].current]
        return self.workspaces[self.random.choice(ids)]

    # --- the API --------------------------------------------------------------------------

    def _api(self, method: str, path: str, body: dict | None = None, expect=(200, 202)) -> dict:
        status, answer = self.platform.api(method, path, body)
        if status not in expect:
            raise Violation(f"{method} {path} answered {status}: {answer}")
        return answer

    def _instance(self, instance_id: str) -> dict:
        return self._api("GET", f"/api/instances/{instance_id}")

    def _wait(self, what: str, condition: Callable[[], object]) -> object:
        deadline = time.monotonic() + self.platform.timeout_seconds
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.1)
        raise Violation(f"timed out waiting for {what}")

    def _wait_status(self, instance_id: str, status: str, *, new_machine_of: str = "") -> dict:
        def reached() -> dict | None:
            instance = self._instance(instance_id)
            if instance["status"] == "error":
                raise Violation(f"{instance_id} is in error: {instance['status_reason']}")
            if instance["status"] != status:
                return None
            if new_machine_of and instance["provider_id"] in ("", new_machine_of):
                return None
            return instance

        return self._wait(f"{instance_id} to be {status}", reached)

    def _files(self, instance: dict) -> Path:
        return self.platform.workspace_of(instance)

    # --- writes (as a user on the machine) -------------------------------------------------

    def _write(self, workspace: Workspace, changes: dict[str, bytes | None]) -> None:
        root = self._files(self._instance(workspace.instance_id))
        content = dict(workspace.current)
        for path, data in changes.items():
            target = root / path
            if data is None:
                target.unlink()
                content.pop(path)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            content[path] = data
        workspace.wrote(content)

    def _new_path(self, folder_choices: int = 3) -> str:
        return f"d{self.random.randrange(folder_choices)}/f{next(self.names)}.txt"

    def _text(self) -> bytes:
        return f"{self.random.random()}\n".encode() * self.random.randint(1, 200)

    def op_write_small(self) -> str:
        workspace = self._pick()
        path = self._new_path()
        self._write(workspace, {path: self._text()})
        return f"{workspace.instance_id}:{path}"

    def op_write_large(self) -> str:
        workspace = self._pick()
        path = f"checkpoints/step{next(self.names)}.bin"
        self._write(workspace, {path: self.random.randbytes(self.large_file_bytes)})
        return f"{workspace.instance_id}:{path}"

    def op_write_tree(self) -> str:
        workspace = self._pick()
        tree = f"env{next(self.names)}"
        files = {
            f"{tree}/pkg{n % 40}/mod{n}.py": f"# {tree} module {n}\n".encode() * (1 + n % 7)
            for n in range(self.tree_files)
        }
        self._write(workspace, files)
        return f"{workspace.instance_id}:{tree} ({len(files)} files)"

    def op_overwrite(self) -> str:
        workspace = self._pick(with_files=True)
        path = self.random.choice(sorted(workspace.current))
        self._write(workspace, {path: self._text()})
        return f"{workspace.instance_id}:{path}"

    def op_delete_file(self) -> str:
        workspace = self._pick(with_files=True)
        path = self.random.choice(sorted(workspace.current))
        self._write(workspace, {path: None})
        return f"{workspace.instance_id}:{path}"

    def op_rename_file(self) -> str:
        workspace = self._pick(with_files=True)
        old = self.random.choice(sorted(workspace.current))
        new = self._new_path()
        root = self._files(self._instance(workspace.instance_id))
        (root / new).parent.mkdir(parents=True, exist_ok=True)
        (root / old).rename(root / new)
        content = dict(workspace.current)
        content[new] = content.pop(old)
        workspace.wrote(content)
        return f"{workspace.instance_id}:{old} -> {new}"

    # --- what keeps writes --------------------------------------------------------------------

    def op_sync(self) -> str:
        """Wait for a sync that began after the last write: it acknowledges everything."""
        workspace = self._pick()
        written_at = time.time()

        def synced() -> bool:
            last = self._instance(workspace.instance_id)["last_sync_at"]
            return bool(last) and datetime.fromisoformat(last).timestamp() > written_at

        self._wait(f"a sync of {workspace.instance_id}", synced)
        workspace.acknowledge()
        return workspace.instance_id

    def op_snapshot(self) -> str:
        workspace = self._pick()
        body = {"instance_id": workspace.instance_id}
        snapshot_id = self._api("POST", "/api/snapshots", body)["id"]

        def finished() -> dict | None:
            snapshot = self._api("GET", f"/api/snapshots/{snapshot_id}")
            if snapshot["status"] == "failed":
                raise Violation(f"snapshot {snapshot_id} failed: {snapshot['error']}")
            return snapshot if snapshot["status"] == "completed" else None

        self._wait(f"snapshot {snapshot_id}", finished)
        self.snapshots.append((snapshot_id, dict(workspace.current)))
        return f"{workspace.instance_id} -> {snapshot_id}"

    def op_restore(self) -> str:
        snapshot_id, content = self.random.choice(self.snapshots)
        restored = self._api("POST", f"/api/snapshots/{snapshot_id}/restore", {})
        instance_id = restored["id"]
        instance = self._wait_status(instance_id, "running")
        self._expect_exactly(instance_id, instance, content, "restored")
        self.workspaces[instance_id] = Workspace(instance_id, "running", dict(content))
        return f"{snapshot_id} -> {instance_id}"

    def op_create(self) -> str:
        created = self._api("POST", "/api/instances", self.create_body)
        instance = self._wait_status(created["id"], "running")
        self._expect_exactly(created["id"], instance, {}, "new")
        self.workspaces[created["id"]] = Workspace(created["id"], "running", {})
        return created["id"]

    def op_hibernate(self) -> str:
        workspace = self._pick()
        self._api("POST", f"/api/instances/{workspace.instance_id}/hibernate")
        self._wait_status(workspace.instance_id, "hibernated")
        workspace.status = "hibernated"
        workspace.acknowledge()  # the final sync holds every write made before it was asked
        return workspace.instance_id

    def op_hibernate_while_writing(self) -> str:
        """A program keeps writing while the instance hibernates: every write it saw succeed
        is kept (it ran before the fence), every later one is refused or paused, never lost."""
        workspace = self._pick()
        root = self._files(self._instance(workspace.instance_id))
        relative = self.random.random() < 0.5  # a program working inside, or writing from outside
        log = f"writer{next(self.names)}.log"
        arguments = [sys.executable, "-c", WRITER, log if relative else str(root / log)]
        writer = subprocess.Popen(
            arguments, cwd=root if relative else "/", stdout=subprocess.PIPE, text=True
        )
        first = writer.stdout.readline()  # it is writing
        if not first.strip().isdigit():
            raise Violation(f"the writer could not start: {first!r}")
        self._api("POST", f"/api/instances/{workspace.instance_id}/hibernate")
        self._wait_status(workspace.instance_id, "hibernated")
        writer.send_signal(signal.SIGKILL)  # paused by the fence, or stopped after a refusal
        output = first + writer.communicate()[0]
        writer.wait()
        succeeded = [line for line in output.split() if line.isdigit()]
        workspace.status = "hibernated"
        # Kept: every line it saw written (a last one written but not yet reported may be there).
        workspace.acknowledge()
        workspace.acknowledged[log] = "".join(f"{n}\n" for n in succeeded).encode()
        workspace.writer_log = (log, len(succeeded))
        return f"{workspace.instance_id} ({len(succeeded)} writes acknowledged, {log})"

    def op_wake(self) -> str:
        workspace = self._pick("hibernated")
        self._api("POST", f"/api/instances/{workspace.instance_id}/wake")
        instance = self._wait_status(workspace.instance_id, "running")
        workspace.status = "running"
        found = read_workspace(self._files(instance))
        self._accept_writer_log(workspace, found)
        self._expect_exactly(workspace.instance_id, instance, workspace.acknowledged, "woken")
        return workspace.instance_id

    def _accept_writer_log(self, workspace: Workspace, found: Content) -> None:
        """The racing writer's log holds at least every line it saw written, in order, and at
        most one more (written, then paused before it could report it)."""
        if workspace.writer_log is None:
            return
        (log, count), workspace.writer_log = workspace.writer_log, None
        expected = workspace.acknowledged[log]
        kept = found.get(log, b"")
        one_more = expected + f"{count}\n".encode()
        if kept not in (expected, one_more):
            lines = len(kept.splitlines())
            raise Violation(
                f"{workspace.instance_id}: {log} lost writes the user saw succeed: "
                f"{count} acknowledged, {lines} kept"
            )
        workspace.acknowledged[log] = kept

    def op_interrupt(self) -> str:
        workspace = self._pick()
        before = self._instance(workspace.instance_id)["provider_id"]
        self._api("POST", f"/api/instances/{workspace.instance_id}/simulate-interruption")
        instance = self._wait_status(workspace.instance_id, "running", new_machine_of=before)
        self._expect_within_rpo(workspace, instance)
        return f"{workspace.instance_id} ({before} -> {instance['provider_id']})"

    def op_interrupt_during_recovery(self) -> str:
        """The replacement GPU is taken back too, while it restores."""
        workspace = self._pick()
        first = self._instance(workspace.instance_id)["provider_id"]
        self._api("POST", f"/api/instances/{workspace.instance_id}/simulate-interruption")

        def replacement() -> str:
            instance = self._instance(workspace.instance_id)
            machine = instance["provider_id"]
            if instance["status"] == "running" and machine not in ("", first):
                return f"late:{machine}"  # it recovered before we could interrupt it
            if instance["status"] == "recovering" and machine not in ("", first):
                return machine
            return ""

        second = str(self._wait("a replacement machine", replacement))
        if not second.startswith("late:"):
            self.platform.take_machine(second)
            if self.platform.reconcile:
                self.platform.reconcile()
        else:
            second = second[5:]
        instance = self._wait_status(workspace.instance_id, "running", new_machine_of=second)
        if instance["provider_id"] == first:
            raise Violation(f"{workspace.instance_id} recovered on the machine that failed")
        self._expect_within_rpo(workspace, instance)
        return f"{workspace.instance_id} ({first} -> {second} -> {instance['provider_id']})"

    def op_delete_instance(self) -> str:
        instance_id = self.random.choice(list(self.workspaces))
        self._api("DELETE", f"/api/instances/{instance_id}")
        self._wait_status(instance_id, "deleted")
        del self.workspaces[instance_id]
        return instance_id

    # --- the invariants ----------------------------------------------------------------------

    def _expect_exactly(self, instance_id: str, instance: dict, expected: Content, what: str):
        found = read_workspace(self._files(instance))
        if found != expected:
            raise Violation(
                f"{instance_id} {what} and running, but its workspace is not what it must be: "
                f"{_describe(expected, found)}"
            )

    def _expect_within_rpo(self, workspace: Workspace, instance: dict) -> None:
        """After a failover: each path holds its acknowledged content or a later one; a path
        untouched since its acknowledgement is exactly there."""
        found = read_workspace(self._files(instance))
        states = [workspace.acknowledged, *workspace.since]
        temporaries = [path for path in found if path.startswith("!temporary:")]
        if temporaries:
            raise Violation(
                f"{workspace.instance_id}: our temporaries in the workspace: {temporaries[:5]}"
            )
        for path in set(found) | {p for state in states for p in state}:
            allowed = {state.get(path) for state in states}
            if found.get(path) not in allowed:
                kind = "lost" if path in workspace.acknowledged else "unexpected"
                raise Violation(
                    f"{workspace.instance_id} after a failover: {path} is {kind} "
                    f"({'absent' if path not in found else 'other content'})"
                )
        workspace.acknowledge(found)

    def check_all(self, *, after: str) -> None:
        for instance_id, workspace in sorted(self.workspaces.items()):
            instance = self._instance(instance_id)
            if instance["status"] != workspace.status:
                raise Violation(
                    f"after {after}: {instance_id} is {instance['status']}, "
                    f"expected {workspace.status} ({instance['status_reason']})"
                )
            if workspace.status != "running":
                continue
            found = read_workspace(self._files(instance))
            if found != workspace.current:
                raise Violation(
                    f"after {after}: {instance_id}'s workspace differs from what "
                    f"its user wrote: {_describe(workspace.current, found)}"
                )
