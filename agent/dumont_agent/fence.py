"""The write fence of a final sync: what hibernation saves is what existed, never a workspace
still being written.

Before the final sync the agent
1. renames the workspace to a hidden sibling and puts a read-only file in its place, so a
   program opening a path under the workspace from now on gets an error (`Not a directory`)
   instead of writing into a tree that is about to be released;
2. pauses (SIGSTOP) every process that still works inside it: its current directory or an open
   file is under the renamed tree (a shell, a training script, a copy in progress);
3. syncs the renamed tree.
When the sync succeeds the machine is released with its processes paused. When it fails, `thaw`
undoes both steps (the processes resume, the workspace is back), and so does an agent that
starts and finds a fenced workspace (the machine was stopped, with its disk, and started again).
A CPU standby handing the workspace back to a new GPU (failover) fences the same way for its
final sync, and stays fenced until the GPU has synced (see jobs.Follow).

On a real machine the customer's processes are the container's; on the simulator they are the
programs writing into the machine's folder. The agent itself and its parents are never paused.
"""

import contextlib
import logging
import os
import shutil
import signal
import time
from pathlib import Path

logger = logging.getLogger("dumont-agent")

NOTICE = (
    "This machine is hibernating: its workspace is being saved and writes are refused.\n"
    "Wake the instance to go on working; nothing written before this moment is lost.\n"
)


class WorkspaceFence:
    def __init__(self, workspace: Path):
        self.workspace = workspace
        self.fenced = workspace.with_name(f".{workspace.name}.fenced")
        self.paused: list[int] = []

    @property
    def is_up(self) -> bool:
        return self.fenced.is_dir()

    def freeze(self) -> Path:
        """Fence the workspace; returns the path to sync (the renamed tree)."""
        if not self.is_up:
            if not self.workspace.is_dir():
                raise FileNotFoundError(f"no workspace at {self.workspace}")
            self.workspace.rename(self.fenced)
            self._place_notice()
        self.paused += pause_processes_using(self.fenced)
        logger.info("workspace fenced; %d process(es) paused", len(self.paused))
        return self.fenced

    def thaw(self) -> None:
        """Undo `freeze`: the workspace back in place, its processes running again."""
        if self.is_up:
            if self.workspace.is_file() or self.workspace.is_symlink():
                self.workspace.unlink()
            if not self.workspace.exists():
                self.fenced.rename(self.workspace)
        # Paused by this agent, or by an earlier one before the machine was stopped.
        resumed = set(self.paused) | set(processes_using(self.workspace))
        for pid in resumed:
            _signal(pid, signal.SIGCONT)
        self.paused = []

    def discard(self) -> None:
        """Drop a fenced workspace whose content is safe elsewhere (a standby after its final
        sync, once the new GPU has synced): the notice and the fenced tree go, and the processes
        paused in it resume in a folder that no longer exists (their writes fail, visibly)."""
        if self.is_up:
            if self.workspace.is_file() or self.workspace.is_symlink():
                self.workspace.unlink()
            shutil.rmtree(self.fenced, ignore_errors=True)
        for pid in self.paused:
            _signal(pid, signal.SIGCONT)
        self.paused = []

    def _place_notice(self) -> None:
        descriptor = os.open(self.workspace, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(NOTICE)


def _protected() -> set[int]:
    """This process and its ancestors (pausing a parent could pause the agent's supervisor)."""
    protected, pid = {os.getpid()}, os.getpid()
    while pid > 1:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                pid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
        protected.add(pid)
    return protected


def processes_using(tree: Path) -> list[int]:
    """Processes whose current directory, root or an open file is at or under `tree`."""
    root = str(tree.resolve())
    inside = (root, root + "/")
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        links = [f"/proc/{pid}/cwd", f"/proc/{pid}/root"]
        with contextlib.suppress(OSError):  # gone, or not ours to look at
            links += [f"/proc/{pid}/fd/{fd}" for fd in os.listdir(f"/proc/{pid}/fd")]
        for link in links:
            try:
                target = os.readlink(link)
            except OSError:
                continue
            if target == root or target.startswith(inside[1]):
                found.append(pid)
                break
    return found


STOP_WAIT_SECONDS = 5.0


def pause_processes_using(tree: Path) -> list[int]:
    """SIGSTOP the processes using `tree` and wait until each is stopped (a signal is delivered
    asynchronously: a writer may run on for a moment after kill() returns)."""
    protected = _protected()
    paused = []
    for pid in processes_using(tree):
        if pid not in protected and _signal(pid, signal.SIGSTOP):
            paused.append(pid)
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    waiting = list(paused)
    while waiting and time.monotonic() < deadline:
        waiting = [pid for pid in waiting if _state(pid) not in ("T", "t", "X", "Z", "")]
        if waiting:
            time.sleep(0.005)
    if waiting:
        logger.warning("processes %s did not stop within %.0f s", waiting, STOP_WAIT_SECONDS)
    return paused


def _state(pid: int) -> str:
    """The process's state letter (T: stopped), "" when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def _signal(pid: int, number: int) -> bool:
    try:
        os.kill(pid, number)
    except OSError:
        return False
    return True
