"""The simulated provider's HTTP API, served by a real `python -m simulator` process."""

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from conftest import Simulator, free_port, wait_until

# A complete agent config: the agent keeps retrying the unreachable API with backoff. Without a
# token it would exit at once (and be restarted), and the pid checks below would race it.
SPEC = {
    "instance_id": "itest",
    "env": {"DUMONT_API_URL": "http://127.0.0.1:9", "DUMONT_AGENT_TOKEN": "dia_test"},
}


def _create(simulator: Simulator, key: str, offer_id: str = "rtx4090-us-east-1x") -> httpx.Response:
    return simulator.put(f"/v1/machines/{key}", {"offer_id": offer_id, "spec": SPEC})


def _running(simulator: Simulator, machine_id: str) -> dict:
    return wait_until(
        lambda: (m := simulator.get(f"/v1/machines/{machine_id}"))["state"] == "running" and m
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") == -1


def _agent_pid(machine: dict) -> int:
    import sqlite3

    database = Path(machine["folder"]).parent.parent / "state.sqlite3"
    with sqlite3.connect(database) as db:
        return db.execute("SELECT pid FROM machines WHERE id = ?", (machine["id"],)).fetchone()[0]


def test_offers_filter_by_gpu_region_count_and_price(simulator):
    offers = simulator.get("/v1/offers?gpu=rtx%204090&region=eu-west&gpu_count=2")["offers"]
    cheap = simulator.get("/v1/offers?max_price_micros=150000")["offers"]

    assert offers and all(
        (o["gpu"], o["region"], o["gpu_count"]) == ("RTX 4090", "EU-West", 2) for o in offers
    )
    assert all(o["price_micros_per_hour"] <= 150000 for o in cheap)


def test_a_machine_boots_after_the_delay_with_a_live_agent_in_its_folder(simulator):
    created = _create(simulator, "key-boot")

    assert created.status_code == 201
    assert created.json()["state"] == "starting"
    machine = _running(simulator, created.json()["id"])
    assert (Path(machine["folder"]) / "workspace").is_dir()
    assert _alive(_agent_pid(machine))
    assert machine["gpu_utilization_percent"] == 0.0  # idle until a load is set


def test_concurrent_creates_with_one_key_make_one_machine(simulator):
    answers: list[httpx.Response] = []
    threads = [
        threading.Thread(target=lambda: answers.append(_create(simulator, "same-key")))
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(answer.status_code for answer in answers) == [200] * 5 + [201]
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert len([m for m in simulator.machines() if m["idempotency_key"] == "same-key"]) == 1


def test_an_offer_with_no_machine_left_is_a_409(simulator):
    offer = simulator.get("/v1/offers?gpu=B200&gpu_count=8")["offers"][0]
    for n in range(offer["available"]):
        assert _create(simulator, f"b200-{n}", offer["offer_id"]).status_code == 201

    refused = _create(simulator, "b200-one-too-many", offer["offer_id"])

    assert refused.status_code == 409
    assert refused.json()["error"] == "offer_unavailable"


def test_stop_start_interrupt_and_destroy_move_the_machine_and_its_agent(simulator):
    machine = _running(simulator, _create(simulator, "key-life").json()["id"])
    first_agent = _agent_pid(machine)
    path = f"/v1/machines/{machine['id']}"

    stopped = simulator.post(f"{path}/stop").json()
    wait_until(lambda: not _alive(first_agent))
    simulator.post(f"{path}/start")
    restarted = _running(simulator, machine["id"])
    interrupted = simulator.post(f"{path}/interrupt").json()
    deleted = httpx.delete(f"{simulator.url}{path}")
    deleted_again = httpx.delete(f"{simulator.url}{path}")

    assert stopped["state"] == "stopped"
    assert _agent_pid(restarted) != first_agent
    assert interrupted["state"] == "interrupted"
    assert (deleted.status_code, deleted_again.status_code) == (204, 204)
    assert simulator.get(path)["state"] == "destroyed"
    assert not Path(machine["folder"]).exists()


def test_the_load_knob_sets_what_the_machine_reports(simulator):
    machine = _running(simulator, _create(simulator, "key-load").json()["id"])

    answer = simulator.put(f"/v1/machines/{machine['id']}/load", {"gpu_utilization_percent": 3})

    assert answer.json()["gpu_utilization_percent"] == 3


def test_fault_knobs_answer_429_with_retry_after_then_500_then_hang(simulator):
    simulator.post("/v1/faults", {"fail_next": 1, "fail_status": 429, "retry_after": 7})
    limited = httpx.get(f"{simulator.url}/v1/offers")
    simulator.post("/v1/faults", {"fail_next": 1, "fail_status": 500})
    broken = httpx.get(f"{simulator.url}/v1/offers")
    simulator.post("/v1/faults", {"timeout_next": 1, "timeout_seconds": 2})

    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{simulator.url}/v1/offers", timeout=0.5)
    healthy = httpx.get(f"{simulator.url}/v1/offers")

    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "7")
    assert broken.status_code == 500
    assert healthy.status_code == 200


def test_machines_survive_a_restart_of_the_simulator(start_process, tmp_path):
    port = free_port()
    arguments = [
        "-m",
        "simulator",
        "--home",
        str(tmp_path),
        "--port",
        str(port),
        "--provision-delay",
        "0.2",
        "--hazard-scale",
        "0",
    ]
    first = start_process(*arguments)
    simulator = Simulator(f"http://127.0.0.1:{port}")
    wait_until(lambda: _answers(simulator))
    machine = _running(simulator, _create(simulator, "key-restart").json()["id"])
    old_agent = _agent_pid(machine)

    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=15) == 0
    assert not _alive(old_agent)
    start_process(*arguments)
    wait_until(lambda: _answers(simulator))

    again = _running(simulator, machine["id"])
    wait_until(lambda: _agent_pid(again) and _alive(_agent_pid(again)))
    assert _agent_pid(again) != old_agent


def _answers(simulator: Simulator) -> bool:
    try:
        return httpx.get(f"{simulator.url}/v1/offers", timeout=1).status_code == 200
    except httpx.HTTPError:
        time.sleep(0.1)
        return False
