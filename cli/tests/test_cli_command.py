"""The installed `dumont` command itself: help, completion, and errors without tracebacks."""

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from dumont_client.cli import app

DUMONT = Path(sys.executable).with_name("dumont")


def test_help_lists_the_faq_commands():
    result = CliRunner().invoke(app, ["--help"])

    assert result.exit_code == 0
    for command in ("login", "create", "list", "hibernate", "wake", "delete", "ssh", "spot"):
        assert command in result.stdout


def test_bash_completion_completes_subcommands():
    # What the script from `dumont --install-completion` asks the command on each <Tab>.
    result = subprocess.run(
        [str(DUMONT)],
        env={
            **os.environ,
            "_DUMONT_COMPLETE": "complete_bash",
            "COMP_WORDS": "dumont spot ",
            "COMP_CWORD": "2",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["monitor", "predict", "safe-windows", "savings"]


def test_the_installed_command_fails_in_one_line_without_a_traceback(config_dir):
    result = subprocess.run(
        [str(DUMONT), "--api-url", "http://127.0.0.1:9", "--api-key", "dmt_x", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert result.stderr.startswith("error: connection_error: cannot reach http://127.0.0.1:9")
    assert result.stderr.count("\n") == 1
