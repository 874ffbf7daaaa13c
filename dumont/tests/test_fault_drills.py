"""Fault drills: Redis restarted under a worker, Postgres connections dropped under a web
process, a worker killed with SIGKILL in the middle of a task.

Every drill runs real processes (redis-server, uvicorn, celery worker, the simulator) and breaks
them from outside, then shows what a user would notice: tasks run again, requests answer JSON,
no row is half written, a machine is created once and a webhook is recorded delivered once.
What Redis without persistence cannot promise (tasks queued and lost with its memory) is
recovered by reconcile and the webhook outbox, as DESIGN.md and OPERATIONS.md describe.
"""

import os
import signal
import subprocess
import threading
from datetime import timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
from django.db import connection
from django.utils import timezone
from werkzeug import Response

from conftest import celery_arguments, free_port, wait_until, worker_arguments
from instances.models import Instance, InstanceEvent
from instances.tests.factories import InstanceFactory
from webhooks.models import WebhookDelivery
from webhooks.tests.factories import make_delivery, make_endpoint, receiver_url

Status = Instance.Status
WEB_APPLICATION_NAME = "dumont-drill-web"


# --- Processes the drills break -----------------------------------------------------------------


class RedisServer:
    """Our own redis-server on a free port (never the machine's on 6379), without persistence."""

    def __init__(self, directory: Path):
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.directory)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_until(self._answers, timeout=15)

    def kill(self) -> None:
        """SIGKILL: what a crash or an OOM kill does; its memory (queued tasks) is gone."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def _answers(self) -> bool:
        try:
            return redis.Redis.from_url(self.url, socket_timeout=1).ping()
        except redis.RedisError:
            return False


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.kill()


def _send(task, *arguments, broker_url: str) -> None:
    """Queue a task on another broker than the test settings' (the drill's own Redis)."""
    from dumont.celery import app

    with app.connection_for_write(broker_url) as broker:
        task.apply_async(arguments, connection=broker)


def _web_process(start_process, test_database_url: str, **env: str) -> str:
    """The ASGI app in its own uvicorn process on the test database; its Postgres sessions are
    named WEB_APPLICATION_NAME so that a drill can drop them and only them."""
    port = free_port()
    start_process(
        "-m",
        "uvicorn",
        "dumont.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        env={"DATABASE_URL": test_database_url, "PGAPPNAME": WEB_APPLICATION_NAME, **env},
    )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return httpx.get(f"{url}/api/health/live", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(answers, timeout=60)
    return url


def _terminate_web_sessions() -> int:
    """pg_terminate_backend() on every session of the web process (never the test's own)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = %s",
            [WEB_APPLICATION_NAME],
        )
        return cursor.fetchone()[0]


def _worker_children(worker: subprocess.Popen) -> list[int]:
    """The pool processes of a prefork worker (the ones that run tasks)."""
    path = Path(f"/proc/{worker.pid}/task/{worker.pid}/children")
    return [int(pid) for pid in path.read_text().split()]


# --- 1. Redis restarted during work ---------------------------------------------------------------


def test_after_a_redis_restart_reconcile_and_the_outbox_recover_the_work_lost_with_it(
    owner, own_redis, simulator, httpserver, start_process, test_database_url, settings
):
    from instances.tasks import reconcile
    from webhooks.tasks import sweep_deliveries

    httpserver.expect_request("/hook").respond_with_data("ok")
    endpoint = make_endpoint(owner.tenant, receiver_url(httpserver), events=["instance.running"])
    start_process(
        *worker_arguments(),
        env={
            "DATABASE_URL": test_database_url,
            "REDIS_URL": own_redis.url,
            "SIM_PROVIDER_URL": simulator.url,
            "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        },
    )
    # Work whose tasks were queued before the crash and lost with Redis's memory: an instance
    # left pending and a first webhook attempt that no task will make.
    long_ago = timezone.now() - timedelta(seconds=settings.INSTANCE_STEP_RETRY_SECONDS + 5)
    instance = InstanceFactory(
        tenant=owner.tenant,
        status=Status.PENDING,
        status_changed_at=long_ago,
        max_price_micros=5_000_000,
    )
    delivery = make_delivery(endpoint)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=long_ago)

    own_redis.kill()
    own_redis.start()
    # What beat sends on its schedule, sent once here to the restarted Redis.
    _send(reconcile, broker_url=own_redis.url)
    _send(sweep_deliveries, broker_url=own_redis.url)

    provisioned = wait_until(
        lambda: Instance.objects.filter(pk=instance.pk).exclude(provider_id="").first(),
        timeout=60,
    )
    delivered = wait_until(
        lambda: WebhookDelivery.objects.filter(
            pk=delivery.pk, status=WebhookDelivery.Status.SUCCEEDED
        ).first(),
        timeout=60,
    )
    machines = [m for m in simulator.machines() if m["idempotency_key"] == instance.provision_key]
    assert [machine["id"] for machine in machines] == [provisioned.provider_id]
    assert delivered.attempt_count == 1
    assert len(httpserver.log) == 1


# --- 2. Postgres connections dropped ------------------------------------------------------------


def _get_instances(url: str, token: str) -> httpx.Response:
    return httpx.get(
        f"{url}/api/instances", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def test_a_web_process_whose_database_connections_were_dropped_answers_the_next_request(
    owner, start_process, test_database_url
):
    url = _web_process(start_process, test_database_url)
    assert _get_instances(url, owner.token).status_code == 200

    dropped = _terminate_web_sessions()
    response = _get_instances(url, owner.token)

    assert dropped >= 1
    assert response.status_code == 200
    assert response.json()["results"] == []


@pytest.fixture
def database_refusing_connections(transactional_db):
    """Turn new connections to the test database away (sessions already open stay)."""

    parameters = connection.settings_dict
    # A database cannot refuse connections from a session of its own: ask from `postgres`.
    maintenance_url = (
        f"postgres://{parameters['USER']}@{parameters['HOST'] or '127.0.0.1'}:"
        f"{parameters['PORT'] or 5432}/postgres"
    )
    name = connection.ops.quote_name(parameters["NAME"])

    def refuse(is_refused: bool) -> None:
        with psycopg.connect(maintenance_url, autocommit=True) as maintenance:
            maintenance.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS {not is_refused}")

    yield refuse
    refuse(False)


def test_an_api_request_while_the_database_is_unreachable_is_a_503_json_then_service_resumes(
    owner, start_process, test_database_url, database_refusing_connections
):
    url = _web_process(start_process, test_database_url, DATABASE_POOL_TIMEOUT="2")
    assert _get_instances(url, owner.token).status_code == 200

    database_refusing_connections(True)
    _terminate_web_sessions()
    during = _get_instances(url, owner.token)
    database_refusing_connections(False)
    after = _get_instances(url, owner.token)

    assert during.status_code == 503
    assert during.headers["content-type"] == "application/json"
    assert during.json()["code"] == "database_unavailable"
    assert during.headers["Retry-After"] == "5"
    assert "Traceback" not in during.text
    assert after.status_code == 200


def test_a_creation_cut_off_mid_transaction_leaves_no_instance_and_no_event(
    owner, simulator, start_process, test_database_url
):
    url = _web_process(start_process, test_database_url, SIM_PROVIDER_URL=simulator.url)
    responses: list[httpx.Response] = []

    # Hold the event table: the creation inserts its instance row, then waits to insert the
    # instance's first event, inside one transaction.
    with psycopg.connect(test_database_url) as holder:
        holder.execute("LOCK TABLE instances_instanceevent IN EXCLUSIVE MODE")
        creating = threading.Thread(
            target=lambda: responses.append(
                httpx.post(
                    f"{url}/api/instances",
                    json={"gpu": "RTX 4090", "max_price": 2.0},
                    headers={"Authorization": f"Bearer {owner.token}"},
                    timeout=60,
                )
            )
        )
        creating.start()
        wait_until(_web_session_waits_for_a_lock, timeout=30)
        _terminate_web_sessions()
        creating.join(timeout=60)

    (response,) = responses
    assert response.status_code == 503
    assert response.json()["code"] == "database_unavailable"
    assert not Instance.objects.filter(tenant=owner.tenant).exists()
    assert not InstanceEvent.objects.filter(tenant=owner.tenant).exists()
    assert simulator.machines() == []


def _web_session_waits_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = %s AND wait_event_type = 'Lock'",
            [WEB_APPLICATION_NAME],
        )
        return cursor.fetchone()[0] > 0


# --- 3. A worker killed with SIGKILL mid-task --------------------------------------------------


def _prefork_worker(start_process, env: dict[str, str]) -> subprocess.Popen:
    """A worker whose one pool process runs the tasks: killing that process is what an OOM kill
    or a crash does, and the main process, still alive, hands the unacknowledged message back
    to the broker (CELERY_TASK_ACKS_LATE + CELERY_TASK_REJECT_ON_WORKER_LOST)."""
    from dumont.celery import app

    app.control.purge()  # tasks left in the test broker by earlier tests are not ours
    worker = start_process(
        *celery_arguments(
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            "1",
            "--without-mingle",
            "--without-gossip",
        ),
        env=env,
    )
    wait_until(lambda: _worker_children(worker), timeout=60)
    return worker


def _kill_pool_processes(worker: subprocess.Popen) -> None:
    for pid in _worker_children(worker):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def simulator_process(simulator) -> int:
    """The simulator's process, to pause it (SIGSTOP) while a task waits on it."""
    port = simulator.url.rsplit(":", 1)[1]
    for status in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            arguments = status.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"simulator" in arguments and port.encode() in arguments:
            return int(status.parent.name)
    raise AssertionError("the simulator's process was not found")


def test_a_provision_task_whose_worker_is_killed_mid_task_runs_again_and_rents_one_machine(
    owner, simulator, simulator_process, start_process, test_database_url
):
    from instances.tasks import provision

    worker = _prefork_worker(
        start_process, {"DATABASE_URL": test_database_url, "SIM_PROVIDER_URL": simulator.url}
    )
    instance = InstanceFactory(
        tenant=owner.tenant, status=Status.PENDING, max_price_micros=5_000_000
    )
    # The provider stops answering: the task has moved the instance to provisioning and waits
    # for the market's answer when its process is killed.
    os.kill(simulator_process, signal.SIGSTOP)
    try:
        provision.delay(instance.pk)
        wait_until(
            lambda: Instance.objects.filter(pk=instance.pk, status=Status.PROVISIONING).exists(),
            timeout=60,
        )
        _kill_pool_processes(worker)
    finally:
        os.kill(simulator_process, signal.SIGCONT)

    provisioned = wait_until(
        lambda: Instance.objects.filter(pk=instance.pk).exclude(provider_id="").first(),
        timeout=60,
    )

    machines = [m for m in simulator.machines() if m["idempotency_key"] == instance.provision_key]
    assert [machine["id"] for machine in machines] == [provisioned.provider_id]
    assert provisioned.provision_attempts == 1
    assert provisioned.events.filter(to_status=Status.PROVISIONING).count() == 1


def test_a_webhook_whose_worker_is_killed_mid_post_is_recorded_delivered_once(
    owner, httpserver, start_process, test_database_url
):
    from webhooks.delivery import CLAIM_LEASE
    from webhooks.tasks import deliver_webhook, sweep_deliveries

    arrived, release = threading.Event(), threading.Event()

    def receiver(request):
        arrived.set()
        release.wait(timeout=60)
        return Response("ok")

    httpserver.expect_request("/hook").respond_with_handler(receiver)
    endpoint = make_endpoint(owner.tenant, receiver_url(httpserver), events=["instance.running"])
    worker = _prefork_worker(
        start_process, {"DATABASE_URL": test_database_url, "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1"}
    )
    delivery = make_delivery(endpoint)

    deliver_webhook.delay(owner.tenant.id, delivery.pk)
    wait_until(arrived.is_set, timeout=60)
    _kill_pool_processes(worker)
    release.set()
    # The redelivered task finds the row claimed (CLAIM_LEASE keeps it from a second worker
    # while an attempt may still run); once the lease has run out the sweep sends it again.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    sweep_deliveries.delay()

    delivered = wait_until(
        lambda: WebhookDelivery.objects.filter(
            pk=delivery.pk, status=WebhookDelivery.Status.SUCCEEDED
        ).first(),
        timeout=60,
    )
    wait_until(lambda: len(httpserver.log) == 2, timeout=30)

    assert timedelta(minutes=2) == CLAIM_LEASE
    assert delivered.attempt_count == 2
    # The receiver saw the event twice, under one delivery id and one event id: its contract
    # is to deduplicate on them (at-least-once delivery).
    requests = [request for request, _ in httpserver.log]
    assert {request.headers["Dumont-Delivery"] for request in requests} == {str(delivery.pk)}
    assert {request.get_json()["id"] for request in requests} == {str(delivery.event_id)}
