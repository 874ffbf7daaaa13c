"""The CLI and SDK against the real API on a real port (pytest-django's live_server).

Every test gets an empty config directory and no DUMONT_* variables, so nothing leaks from the
machine running the tests into them (or from one test into the next).
"""

from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

from dumont_client.cli import app

# The API, a Celery worker and the simulated market, for instances that must reach `running`.
from instances.tests.conftest import platform  # noqa: F401

# The platform with a snapshot store of the test's own, for the snapshot commands.
from snapshots.tests.conftest import snapshot_platform, snapshot_store  # noqa: F401

# Imported market history, for the spot commands.
from spot.tests.conftest import history_csv, market  # noqa: F401


@pytest.fixture(autouse=True)
def config_dir(tmp_path, monkeypatch):
    directory = tmp_path / "dumont-config"
    monkeypatch.setenv("DUMONT_CONFIG_DIR", str(directory))
    monkeypatch.delenv("DUMONT_API_KEY", raising=False)
    monkeypatch.delenv("DUMONT_API_URL", raising=False)
    return directory


@dataclass
class Outcome:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def dumont():
    """Run `dumont ARGS...` in this process; returns its exit code, stdout and stderr."""
    runner = CliRunner()

    def run(*arguments: str, input: str | None = None) -> Outcome:
        result = runner.invoke(app, list(arguments), input=input, prog_name="dumont")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Outcome(result.exit_code, result.stdout, result.stderr)

    return run


@pytest.fixture
def logged_in(owner, live_server, monkeypatch):
    """The owner's token and the live server's address, as a user's environment gives them."""
    monkeypatch.setenv("DUMONT_API_URL", live_server.url)
    monkeypatch.setenv("DUMONT_API_KEY", owner.token)
    return owner
