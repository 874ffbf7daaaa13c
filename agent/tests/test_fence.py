"""The final sync saves what existed: the workspace is fenced (writes refused, its writers
paused) while it is synced, and a failed final sync gives everything back."""

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import wait_until
from dumont_agent.activity import ActivityProbe, network_bytes
from dumont_agent.engine import JobFailed, LibraryEngine
from dumont_agent.fence import WorkspaceFence
from dumont_agent.jobs import Follow, Jobs, Sync
from snapshots.engine.repository import Repository
from snapshots.engine.store import LocalStore

SECRET = "s3cret-for-the-fence-tests"

# A user's program in the workspace: appends a numbered line every few milliseconds.
WRITER = """
import itertools, pathlib, time
log = pathlib.Path("log.txt")
for n in itertools.count():
    with log.open("a") as handle:
        handle.write(f"{n}\\n")
    time.sleep(0.005)
"""


def _agent_parts(tmp_path: Path, name: str) -> tuple[LibraryEngine, Jobs, Sync, Path]:
    """An agent's engine, jobs and sync on a workspace `name`, with a local repository."""
    Repository.init(LocalStore(tmp_path / "repo"), SECRET, kdf_cost=2**10)
    workspace = tmp_path / name
    workspace.mkdir()
    engine = LibraryEngine()
    jobs = Jobs(engine, workspace)
    sync = Sync(engine, workspace, tmp_path / "state", jobs)
    jobs.sync = sync
    return engine, jobs, sync, workspace


@pytest.fixture
def machine(tmp_path: Path):
    _engine, jobs, sync, workspace = _agent_parts(tmp_path, "workspace")
    sync.configure(
        {"repository": str(tmp_path / "repo"), "secret": SECRET, "interval_seconds": 3600},
        save=False,
    )
    yield jobs, workspace, tmp_path / "repo"
    sync.stop.set()
    sync.wake.set()


@pytest.fixture
def writer(machine):
    _jobs, workspace, _repo = machine
    process = subprocess.Popen([sys.executable, "-c", WRITER], cwd=workspace)
    wait_until(lambda: (workspace / "log.txt").exists(), timeout=20)
    yield process
    process.kill()
    process.wait()


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _restored(repo: Path, snapshot_id: str, target: Path) -> Path:
    Repository.open(LocalStore(repo), SECRET).restore(snapshot_id, target)
    return target


def test_the_final_sync_holds_everything_written_before_the_fence(machine, writer, tmp_path):
    jobs, workspace, repo = machine

    report = jobs._final_sync({}, lambda progress: None)

    fenced = jobs.fence.fenced
    assert _state(writer.pid) == "T"  # paused: nothing is written after the sync began
    saved = _restored(repo, report["snapshot_id"], tmp_path / "restored")
    assert (saved / "log.txt").read_bytes() == (fenced / "log.txt").read_bytes()
    with pytest.raises(NotADirectoryError):
        (workspace / "late.txt").write_text("written while it hibernates")
    assert not any(path.name == "late.txt" for path in fenced.rglob("*"))


def test_a_failed_final_sync_thaws_the_workspace_and_its_writers(machine, writer, tmp_path):
    jobs, workspace, _repo = machine
    with jobs.sync.lock:  # a repository that is not there: the sync fails
        jobs.sync.args["repository"] = str(tmp_path / "nowhere")

    with pytest.raises(JobFailed):
        jobs._final_sync({}, lambda progress: None)

    assert workspace.is_dir() and not jobs.fence.is_up
    wait_until(lambda: _state(writer.pid) != "T", timeout=20)
    lines = len((workspace / "log.txt").read_text().splitlines())
    wait_until(lambda: len((workspace / "log.txt").read_text().splitlines()) > lines, timeout=20)


def test_an_agent_that_finds_a_fenced_workspace_thaws_it(machine, writer):
    jobs, workspace, _repo = machine
    jobs.fence.freeze()
    assert _state(writer.pid) == "T"

    WorkspaceFence(workspace).thaw()  # what a restarted agent does first

    assert workspace.is_dir()
    wait_until(lambda: _state(writer.pid) != "T", timeout=20)


def test_a_final_sync_is_refused_while_a_restore_writes_the_workspace(machine):
    jobs, workspace, _repo = machine
    (workspace / "partial.bin").write_bytes(b"half of it")
    with jobs.lock:
        jobs.restoring += 1

    with pytest.raises(JobFailed, match="restore"):
        jobs._final_sync({}, lambda progress: None)

    assert workspace.is_dir() and not jobs.fence.is_up


def test_the_fence_never_pauses_the_agent_itself(machine):
    jobs, workspace, _repo = machine
    handle = (workspace / "held-open-by-the-agent.txt").open("w")
    done = threading.Event()
    try:
        jobs.fence.freeze()
        done.set()
    finally:
        handle.close()
        jobs.fence.thaw()

    assert done.is_set()


def test_workspace_changes_count_as_activity(machine):
    jobs, workspace, _repo = machine
    probe = ActivityProbe(None, jobs.sync.workspace_changed)
    jobs.sync.sync_once()
    assert probe.read()["workspace_changed"] is False

    (workspace / "upload.part").write_bytes(b"x" * 1024)
    jobs.sync.sync_once()

    assert probe.read()["workspace_changed"] is True


def test_a_simulated_machine_reads_sessions_and_traffic_from_its_profile(tmp_path):
    profile = tmp_path / "load.json"
    profile.write_text('{"interactive_sessions": 2, "network_bytes_per_second": 5000}')

    report = ActivityProbe(profile, lambda: False).read()

    assert report == {
        "workspace_changed": False,
        "interactive_sessions": 2,
        "network_bytes_per_second": 5000.0,
    }


def test_network_bytes_leave_out_loopback(tmp_path):
    counters = tmp_path / "dev"
    counters.write_text(
        "Inter-|   Receive                  |  Transmit\n"
        " face |bytes packets errs drop fifo frame compressed multicast|bytes packets\n"
        "    lo: 9000 1 0 0 0 0 0 0 9000 1 0 0 0 0 0 0\n"
        "  eth0: 100 1 0 0 0 0 0 0 50 1 0 0 0 0 0 0\n"
    )

    assert network_bytes(counters) == 150


@pytest.fixture
def standby(tmp_path: Path):
    """A standby's agent serving a workspace (promoted), on a local repository."""
    engine, jobs, sync, workspace = _agent_parts(tmp_path, "standby-workspace")
    follow = Follow(engine, workspace, tmp_path / "state", sync, fence=jobs.fence)
    args = {
        "repository": str(tmp_path / "repo"),
        "secret": SECRET,
        "instance_tag": "instance:i1",
        "tags": ["sync", "instance:i1"],
        "interval_seconds": 3600,
    }
    follow.configure(args, save=False)
    follow.promote(args)
    yield follow, workspace, engine, args
    for loop in (sync, follow):
        loop.wake.set()
    sync.stop.set()


def test_a_standby_handing_back_to_the_gpu_keeps_writes_out_until_the_gpu_has_synced(
    standby, tmp_path
):
    follow, workspace, engine, args = standby
    writer = subprocess.Popen([sys.executable, "-c", WRITER], cwd=workspace)
    try:
        wait_until(lambda: (workspace / "log.txt").exists(), timeout=20)

        demoted = follow.demote()

        assert _state(writer.pid) == "T"
        with pytest.raises(NotADirectoryError):
            (workspace / "late.txt").write_text("written on the standby after its final sync")
        saved = _restored(tmp_path / "repo", demoted["snapshot_id"], tmp_path / "saved")
        assert (saved / "log.txt").read_bytes() == (follow.fence.fenced / "log.txt").read_bytes()

        gpu = tmp_path / "gpu-workspace"  # the new GPU restored it, worked, and synced
        gpu.mkdir()
        (gpu / "log.txt").write_bytes((saved / "log.txt").read_bytes() + b"gpu\n")
        engine.backup(args, str(gpu), ["sync", "instance:i1"], lambda progress: None)
        follow.step()

        assert (workspace / "log.txt").read_bytes().endswith(b"gpu\n")
        assert not follow.fence.is_up
        wait_until(lambda: _state(writer.pid) != "T", timeout=20)
    finally:
        writer.kill()
        writer.wait()


def test_a_standby_promoted_again_before_the_gpu_synced_serves_its_final_sync(standby):
    follow, workspace, _engine, args = standby
    (workspace / "notes.txt").write_text("written on the standby\n")
    follow.demote()
    assert follow.fence.is_up

    follow.promote(args)  # a second interruption: the new GPU is lost before its first sync

    assert (workspace / "notes.txt").read_text() == "written on the standby\n"
    assert not follow.fence.is_up


def test_a_second_restore_while_one_writes_the_workspace_is_refused(machine):
    jobs, _workspace, _repo = machine
    with jobs.lock:
        jobs.restoring += 1  # a restore is writing

    jobs.start({"id": 7, "kind": "restore", "args": {"snapshot_id": "x"}})

    _progress, results = jobs.pending()
    assert results == [
        {"id": 7, "ok": False, "detail": "a restore is already writing the workspace", "result": {}}
    ]
