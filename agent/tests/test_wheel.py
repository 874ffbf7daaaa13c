"""The agent's wheel is what real machines install: it must carry a working snapshot engine."""

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

AGENT_DIR = Path(__file__).resolve().parent.parent

# Run from the unpacked wheel alone (no repository on the path): the wheel's own files back up
# and restore a workspace through the agent's in-process engine.
CHECK = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import dumont_agent
    import snapshots.engine
    from dumont_agent.engine import LibraryEngine
    from snapshots.engine.repository import Repository
    from snapshots.engine.store import LocalStore

    site, work = Path(sys.argv[1]), Path(sys.argv[2])
    for module in (dumont_agent, snapshots.engine):
        assert Path(module.__file__).is_relative_to(site), module.__file__
    Repository.init(LocalStore(work / "repo"), "secret", kdf_cost=2**10)
    args = {"repository": str(work / "repo"), "secret": "secret"}
    (work / "workspace").mkdir()
    (work / "workspace" / "model.txt").write_text("trained")
    engine = LibraryEngine()
    info = engine.backup(args, str(work / "workspace"), ["sync"], lambda report: None)
    engine.restore(args, info["id"], str(work / "restored"), lambda report: None)
    print((work / "restored" / "model.txt").read_text())
    """
)


def test_the_agent_wheel_carries_a_working_snapshot_engine(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"),
            *("--no-index", "--quiet", "--wheel-dir", str(dist), str(AGENT_DIR)),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = dist.glob("dumont_agent-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "snapshots/engine/backup.py" in names
    assert "snapshots/__init__.py" not in names  # not the server's Django app
    assert not [name for name in names if "/tests/" in name]

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", CHECK, str(site), str(work)],
        cwd=work,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "trained"
