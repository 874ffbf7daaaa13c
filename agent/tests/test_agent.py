"""`dumont-agent` as a real process against a local fake of the Dumont API."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from conftest import wait_until

AGENT_DIR = Path(__file__).resolve().parent.parent
TOKEN = "dia_" + "a" * 64


class FakeApi:
    """Answers heartbeats with a script of (status, body) and records every request."""

    def __init__(self, server: HTTPServer, script: list[tuple[int, dict]]):
        self.requests: list[tuple[dict, dict]] = []
        self.script = script
        server.expect_request("/api/agent/heartbeat", method="POST").respond_with_handler(
            self.handle
        )

    def handle(self, request: Request) -> Response:
        self.requests.append((dict(request.headers), json.loads(request.data)))
        status, body = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        return Response(json.dumps(body), status=status, content_type="application/json")


def _reply(commands=()) -> tuple[int, dict]:
    return 200, {
        "instance_id": "i1",
        "status": "running",
        "interval_seconds": 0.1,
        "commands": list(commands),
    }


def _start(httpserver: HTTPServer, tmp_path: Path, **extra) -> subprocess.Popen:
    config = {
        "api_url": httpserver.url_for("/").rstrip("/"),
        "token": TOKEN,
        "instance_id": "i1",
        "heartbeat_seconds": 0.1,
        "load_file": str(tmp_path / "load.json"),
        **extra,
    }
    (tmp_path / "load.json").write_text(json.dumps({"gpu_utilization_percent": 42}))
    (tmp_path / "agent.json").write_text(json.dumps(config))
    return subprocess.Popen(
        [sys.executable, "-m", "dumont_agent", "--config", str(tmp_path / "agent.json")],
        cwd=AGENT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture
def stop_agents():
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_heartbeats_carry_the_token_and_the_simulated_utilisation(
    httpserver, tmp_path, stop_agents
):
    api = FakeApi(httpserver, [_reply()])
    stop_agents.append(_start(httpserver, tmp_path))

    wait_until(lambda: len(api.requests) >= 3, timeout=10)

    headers, body = api.requests[0]
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert body["source"] == "simulated"
    assert 37 <= body["gpu_utilization_percent"] <= 47  # 42 ± 5 % noise
    assert body["agent_version"]


def test_commands_run_and_their_results_come_back_in_the_next_beat(
    httpserver, tmp_path, stop_agents
):
    commands = [{"id": 1, "kind": "ping", "args": {"echo": "hi"}}, {"id": 2, "kind": "dance"}]
    api = FakeApi(httpserver, [_reply(commands), _reply()])
    stop_agents.append(_start(httpserver, tmp_path))

    wait_until(lambda: any("command_results" in body for _, body in api.requests), timeout=10)

    results = next(body["command_results"] for _, body in api.requests if "command_results" in body)
    assert results == [
        {"id": 1, "ok": True, "detail": "hi"},
        {"id": 2, "ok": False, "detail": "unknown command 'dance'"},
    ]


def test_server_errors_are_retried_with_backoff_until_the_api_answers(
    httpserver, tmp_path, stop_agents
):
    api = FakeApi(httpserver, [(500, {}), (503, {}), _reply()])
    process = _start(httpserver, tmp_path)
    stop_agents.append(process)

    wait_until(lambda: len(api.requests) >= 4, timeout=15)

    assert process.poll() is None


def test_a_token_refused_past_the_window_exits_3(httpserver, tmp_path, stop_agents):
    FakeApi(httpserver, [(401, {"code": "invalid_token"})])
    process = _start(httpserver, tmp_path, unauthorized_exit_seconds=0.5)
    stop_agents.append(process)

    assert process.wait(timeout=20) == 3
    assert "refuses this agent's token" in process.stdout.read()


def test_the_shutdown_command_and_sigterm_exit_0(httpserver, tmp_path, stop_agents):
    FakeApi(httpserver, [_reply([{"id": 9, "kind": "shutdown"}]), _reply()])
    by_command = _start(httpserver, tmp_path)
    stop_agents.append(by_command)
    assert by_command.wait(timeout=10) == 0

    httpserver.clear()
    FakeApi(httpserver, [_reply()])
    (tmp_path / "second").mkdir()
    by_signal = _start(httpserver, tmp_path / "second")
    stop_agents.append(by_signal)
    time.sleep(0.5)
    by_signal.send_signal(signal.SIGTERM)
    assert by_signal.wait(timeout=10) == 0


def test_a_missing_token_is_a_configuration_error(tmp_path):
    (tmp_path / "agent.json").write_text(json.dumps({"api_url": "http://127.0.0.1:9"}))

    result = subprocess.run(
        [sys.executable, "-m", "dumont_agent", "--config", str(tmp_path / "agent.json")],
        cwd=AGENT_DIR,
        capture_output=True,
        text=True,
        timeout=20,
    )

    assert result.returncode == 2
    assert result.stderr.strip().startswith("dumont-agent: api_url and token are required")


def test_syncs_start_every_interval_whatever_their_own_duration():
    from dumont_agent.jobs import pause_after

    assert pause_after(10, 3) == 7  # a 3 s sync is followed by 7 s: one starts every 10 s
    assert pause_after(2, 0.4) == pytest.approx(1.6)
    # A workspace slower to sync than the interval still rests a tenth of it between syncs.
    assert pause_after(10, 25) == 1
