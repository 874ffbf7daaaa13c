"""The agent's two ways of running the snapshot engine, on a real local repository."""

import sys
from pathlib import Path

import pytest

from dumont_agent.engine import CommandEngine, JobFailed, LibraryEngine, make_engine
from dumont_agent.jobs import newest_sync
from snapshots.engine.repository import Repository
from snapshots.engine.store import LocalStore

SECRET = "s3cret-for-the-agent-tests"


@pytest.fixture
def args(tmp_path: Path) -> dict:
    Repository.init(LocalStore(tmp_path / "repo"), SECRET, kdf_cost=2**10)
    return {"repository": str(tmp_path / "repo"), "secret": SECRET, "instance_tag": "inst-1"}


@pytest.fixture(params=["library", "command"])
def engine(request):
    if request.param == "library":
        return LibraryEngine()
    return CommandEngine([sys.executable, "-m", "snapshots.engine"])


def test_a_sync_restores_byte_identical_with_progress(engine, args, tmp_path):
    workspace = tmp_path / "workspace"
    (workspace / "data").mkdir(parents=True)
    payload = bytes(range(256)) * 4096
    (workspace / "data" / "weights.bin").write_bytes(payload)
    (workspace / "notes.txt").write_text("epoch 3\n")

    phases: list[str] = []
    info = engine.backup(args, str(workspace), ["sync", "inst-1"], lambda p: phases.append(p))
    assert info["tags"] == ["sync", "inst-1"]
    assert info["summary"]["files"] == 2
    assert phases, "the backup reported its progress"

    target = tmp_path / "restored"
    result = engine.restore(args, info["id"], str(target), lambda p: None)
    assert result["files"] == 2
    assert (target / "data" / "weights.bin").read_bytes() == payload
    assert (target / "notes.txt").read_text() == "epoch 3\n"


def test_a_follower_sees_the_syncs_another_machine_writes_after_it_opened(engine, args, tmp_path):
    """The library engine keeps its repository open between operations: what another machine
    writes later must still be seen (a standby following a GPU)."""
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    gpu = LibraryEngine()
    (workspace / "step.txt").write_text("1")
    first = gpu.backup(args, str(workspace), ["sync", "inst-1"], lambda p: None)
    assert newest_sync(engine, args)["id"] == first["id"]

    (workspace / "step.txt").write_text("22")
    second = gpu.backup(args, str(workspace), ["sync", "inst-1"], lambda p: None)
    assert newest_sync(engine, args)["id"] == second["id"]
    restored = tmp_path / "standby"
    engine.restore(args, second["id"], str(restored), lambda p: None)
    assert (restored / "step.txt").read_text() == "22"


def test_failures_are_one_readable_line(engine, args, tmp_path):
    with pytest.raises(JobFailed, match="secret"):
        engine.snapshots({**args, "secret": "not-the-secret"})
    with pytest.raises(JobFailed, match="no repository"):
        engine.snapshots({**args, "repository": str(tmp_path / "missing")})
    with pytest.raises(JobFailed) as failure:
        engine.restore(args, "f" * 64, str(tmp_path / "target"), lambda p: None)
    assert "\n" not in str(failure.value)


def test_the_config_chooses_the_engine():
    assert isinstance(make_engine([]), LibraryEngine)
    assert isinstance(make_engine(["/opt/engine", "--fast"]), CommandEngine)
