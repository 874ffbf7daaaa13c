"""A real simulated GPU market (a `python -m simulator` process) for instance tests."""

import socket
import time
from dataclasses import dataclass

import httpx
import pytest

from conftest import worker_arguments


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Simulator:
    url: str

    def get(self, path: str) -> dict:
        return httpx.get(f"{self.url}{path}", timeout=5).json()

    def post(self, path: str, body: dict | None = None) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body or {}, timeout=5)

    def put(self, path: str, body: dict) -> httpx.Response:
        return httpx.put(f"{self.url}{path}", json=body, timeout=5)

    def machines(self) -> list[dict]:
        return self.get("/v1/machines")["machines"]


def wait_until(condition, timeout: float = 30.0, every: float = 0.1):
    """Poll `condition` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {condition}")


@pytest.fixture
def simulator(start_process, tmp_path, settings) -> Simulator:
    """The simulated market on a free port, booting machines in 0.3 s, without random faults."""
    port = free_port()
    start_process(
        "-m",
        "simulator",
        "--home",
        str(tmp_path / "sim-home"),
        "--port",
        str(port),
        "--provision-delay",
        "0.3",
        "--hazard-scale",
        "0",
    )
    simulator = Simulator(f"http://127.0.0.1:{port}")

    def answers() -> bool:
        try:
            return httpx.get(f"{simulator.url}/v1/offers", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(answers, timeout=30)
    settings.GPU_PROVIDER = "sim"
    settings.SIM_PROVIDER_URL = simulator.url
    return simulator


@pytest.fixture
def platform(simulator, live_server, settings, start_process, test_database_url):
    """The API on a real HTTP port (for agents) and a Celery worker process, both on the test
    database, with the simulator as provider."""
    from dumont.celery import app

    app.control.purge()  # tasks left in the test broker by earlier tests are not ours
    settings.DUMONT_PUBLIC_URL = live_server.url
    settings.AGENT_HEARTBEAT_SECONDS = 0.5
    start_process(
        *worker_arguments(),
        env={
            "DATABASE_URL": test_database_url,
            "SIM_PROVIDER_URL": simulator.url,
            "DUMONT_PUBLIC_URL": live_server.url,
            "AGENT_HEARTBEAT_SECONDS": "0.5",
        },
    )
    return simulator
