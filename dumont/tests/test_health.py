"""GET /api/health tells whether the database, broker, a worker and beat are alive."""

import json
import os
import subprocess
import sys
import time

import pytest
from django.conf import settings

from conftest import celery_arguments, worker_arguments

HEALTH = "/api/health"


def _wait_for_health(client, timeout_seconds: float = 60):
    deadline = time.monotonic() + timeout_seconds
    while True:
        response = client.get(HEALTH)
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        time.sleep(0.5)


@pytest.mark.django_db
def test_health_is_503_and_names_worker_and_beat_when_neither_runs(anonymous):
    response = anonymous.get(HEALTH)

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "failing"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["broker"]["status"] == "ok"
    assert body["checks"]["worker"]["status"] == "failing"
    assert body["checks"]["beat"]["status"] == "failing"


def test_health_is_ok_once_a_real_worker_and_beat_run(anonymous, start_process, test_database_url):
    database = {"DATABASE_URL": test_database_url}
    start_process(*worker_arguments(), env=database)
    start_process(*celery_arguments("beat"), env=database)

    response = _wait_for_health(anonymous)

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert set(response.json()["checks"]) == {"database", "broker", "worker", "beat"}


def test_beat_without_a_worker_is_reported_as_a_failing_worker(
    anonymous, start_process, test_database_url
):
    start_process(*celery_arguments("beat"), env={"DATABASE_URL": test_database_url})
    deadline = time.monotonic() + 30
    while anonymous.get(HEALTH).json()["checks"]["beat"]["status"] != "ok":
        assert time.monotonic() < deadline, "beat never reported liveness"
        time.sleep(0.5)

    body = anonymous.get(HEALTH).json()

    assert body["checks"]["worker"]["status"] == "failing"
    assert body["status"] == "failing"


def _health_in_a_process_with(env: dict[str, str]) -> tuple[int, dict]:
    """GET /api/health in a separate Django process configured with `env`."""
    return _in_a_process_with("/api/health", env)


def test_health_names_the_database_when_it_does_not_answer():
    status, body = _health_in_a_process_with(
        {"DATABASE_URL": "postgres://postgres@127.0.0.1:1/nowhere"}
    )

    assert status == 503
    assert body["checks"]["database"]["status"] == "failing"
    assert body["checks"]["broker"]["status"] == "ok"


def test_health_names_the_broker_when_redis_does_not_answer(test_database_url):
    status, body = _health_in_a_process_with(
        {"REDIS_URL": "redis://127.0.0.1:1/0", "DATABASE_URL": test_database_url}
    )

    assert status == 503
    assert body["checks"]["broker"]["status"] == "failing"
    assert body["checks"]["database"]["status"] == "ok"


# --- Liveness and readiness ---------------------------------------------------------------------


@pytest.mark.django_db
def test_liveness_answers_ok_with_no_worker_or_beat(anonymous):
    response = anonymous.get("/api/health/live")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readiness_is_ok_with_database_and_broker_even_without_worker_or_beat(anonymous):
    response = anonymous.get("/api/health/ready")

    assert response.status_code == 200
    assert set(response.json()["checks"]) == {"database", "broker"}


def _in_a_process_with(path: str, env: dict[str, str]) -> tuple[int, dict]:
    """GET `path` in a separate Django process configured with `env`."""
    code = (
        "import json; from django.test import Client; "
        f"r = Client(SERVER_NAME='localhost').get('{path}'); "
        "print(json.dumps([r.status_code, r.json()]))"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=settings.BASE_DIR,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    status, body = json.loads(result.stdout.strip().splitlines()[-1])
    return status, body


def test_readiness_is_503_without_the_database_while_liveness_stays_ok():
    no_database = {"DATABASE_URL": "postgres://postgres@127.0.0.1:1/nowhere"}

    ready = _in_a_process_with("/api/health/ready", no_database)
    live = _in_a_process_with("/api/health/live", no_database)

    assert ready[0] == 503
    assert ready[1]["checks"]["database"]["status"] == "failing"
    assert live == (200, {"status": "ok"})


def test_readiness_is_503_without_the_broker(test_database_url):
    status, body = _in_a_process_with(
        "/api/health/ready",
        {"REDIS_URL": "redis://127.0.0.1:1/0", "DATABASE_URL": test_database_url},
    )

    assert status == 503
    assert body["checks"]["broker"]["status"] == "failing"
    assert body["checks"]["database"]["status"] == "ok"


def test_without_redis_the_api_still_answers_unthrottled(test_database_url):
    status, body = _in_a_process_with(
        "/api/me", {"REDIS_URL": "redis://127.0.0.1:1/0", "DATABASE_URL": test_database_url}
    )

    assert status == 401  # answered (not a 500): the rate limits wait for the cache to return
    assert body["code"] == "not_authenticated"
