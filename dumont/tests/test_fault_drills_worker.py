"""Fault drills: a WHOLE Celery worker (main process and pool) killed with SIGKILL mid-task.

When only a pool process dies (test_fault_drills.py), the worker's main process hands its message
back at once. When the whole worker dies (its machine lost, `kill -9` of the main process), no
one is left to do that: the message stays in Redis, unacknowledged, until the broker's visibility
timeout (VISIBILITY_TIMEOUT_SECONDS in dumont/settings.py), and then a worker hands it out again.
The drills run real workers on their own redis-server with that timeout cut to a few seconds and
show what a user would notice: the task is not lost (it runs again on a new worker) and nothing
is done twice (one machine rented, one event per status, one charge per usage period).
"""

import os
import signal
import subprocess
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone

from billing import ledger, metering
from billing.models import LedgerEntry, UsageInterval
from conftest import wait_until
from dumont.tests.test_fault_drills import (
    RedisServer,
    _prefork_worker,
    _send,
    _worker_children,
    own_redis,  # noqa: F401 (a fixture)
    simulator_process,  # noqa: F401 (a fixture)
)
from instances.models import Instance
from instances.tests.factories import InstanceFactory

Status = Instance.Status
WORKER_APPLICATION_NAME = "dumont-drill-worker"
# Short enough for a test, long enough for the few seconds a drill's task runs before its kill.
DRILL_VISIBILITY_TIMEOUT_SECONDS = 5


@pytest.fixture
def broker(own_redis):  # noqa: F811 (the imported fixture, asked for by name)
    """The drill's own redis-server: only its messages are in it (never the machine's 6379)."""
    return own_redis


def _worker_env(test_database_url: str, broker: RedisServer, **env: str) -> dict[str, str]:
    """A worker on the test database and the drill's Redis, its Postgres sessions named
    WORKER_APPLICATION_NAME, with the drill's short visibility timeout."""
    return {
        "DATABASE_URL": test_database_url,
        "REDIS_URL": broker.url,
        "PGAPPNAME": WORKER_APPLICATION_NAME,
        "CELERY_VISIBILITY_TIMEOUT_SECONDS": str(DRILL_VISIBILITY_TIMEOUT_SECONDS),
        **env,
    }


def _kill_whole_worker(worker: subprocess.Popen) -> None:
    """SIGKILL to the main process and its pool at once (one process group), as when the machine
    or the container goes: nothing of the worker is left to hand its message back."""
    pool = _worker_children(worker)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    wait_until(lambda: not any(_is_alive(pid) for pid in pool), timeout=30)


def _is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")  # a zombie has died and waits to be reaped


# --- What the broker holds ----------------------------------------------------------------------


def _broker_key(name: str) -> str:
    return f"{settings.CELERY_BROKER_TRANSPORT_OPTIONS['global_keyprefix']}{name}"


def _queued(broker: RedisServer) -> int:
    """Messages waiting in the default queue for a worker to take them."""
    return redis.Redis.from_url(broker.url).llen(_broker_key("celery"))


def _unacknowledged_since(broker: RedisServer) -> list[float]:
    """When each message handed to a worker and not acknowledged was handed out (kombu's
    unacked index: delivery tag -> time of delivery)."""
    client = redis.Redis.from_url(broker.url)
    return [at for _, at in client.zrange(_broker_key("unacked_index"), 0, -1, withscores=True)]


def _past_visibility_timeout(broker: RedisServer) -> bool:
    delivered = _unacknowledged_since(broker)
    return bool(delivered) and time.time() - max(delivered) > DRILL_VISIBILITY_TIMEOUT_SECONDS


# --- The worker's database sessions -------------------------------------------------------------


def _worker_sessions(*, waiting_for_a_lock: bool = False) -> int:
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = %s"
    )
    if waiting_for_a_lock:
        query += " AND wait_event_type = 'Lock'"
    with connection.cursor() as cursor:
        cursor.execute(query, [WORKER_APPLICATION_NAME])
        return cursor.fetchone()[0]


def _terminate_worker_sessions() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = %s",
            [WORKER_APPLICATION_NAME],
        )


# --- The visibility timeout, chosen ---------------------------------------------------------------


def _longest_countdown_seconds(task) -> int:
    """The longest a retry of `task` waits in a worker, unacknowledged, before it runs."""
    if not getattr(task, "autoretry_for", ()):
        return 0
    return task.retry_backoff_max if task.retry_backoff else task.default_retry_delay


def test_the_visibility_timeout_outlasts_the_longest_wait_and_run_of_any_task():
    from dumont.celery import app

    app.loader.import_default_modules()  # every app's tasks module, as a worker loads them
    tasks = [task for name, task in app.tasks.items() if not name.startswith("celery.")]
    acknowledged_late = [task for task in tasks if task.acks_late]
    longest_wait_and_run = max(
        _longest_countdown_seconds(task) + task.time_limit for task in acknowledged_late
    )

    # Every task is bounded, or the timeout could not be chosen against it.
    assert all(task.soft_time_limit < task.time_limit for task in tasks)
    # A message still waiting for its countdown or still running is never handed out again.
    assert longest_wait_and_run < settings.VISIBILITY_TIMEOUT_SECONDS
    assert (
        settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
        == settings.VISIBILITY_TIMEOUT_SECONDS
    )
    assert max(_longest_countdown_seconds(task) for task in tasks) == (
        settings.TASK_RETRY_COUNTDOWN_MAX_SECONDS
    )
    assert not app.tasks["snapshots.tasks.maintain_repositories"].acks_late
    assert settings.VISIBILITY_TIMEOUT_SECONDS < 3600  # sooner than kombu's default hour


# --- (b) A provision ------------------------------------------------------------------------------


def test_a_provision_whose_worker_is_killed_whole_runs_again_and_rents_one_machine(
    owner,
    broker,
    simulator,
    simulator_process,  # noqa: F811 (the fixture imported above)
    live_server,
    start_process,
    test_database_url,
):
    from instances.tasks import provision

    env = _worker_env(
        test_database_url,
        broker,
        SIM_PROVIDER_URL=simulator.url,
        DUMONT_PUBLIC_URL=live_server.url,  # where the machine's agent beats
        AGENT_HEARTBEAT_SECONDS="0.5",
    )
    worker = _prefork_worker(start_process, env)
    instance = InstanceFactory(
        tenant=owner.tenant, status=Status.PENDING, max_price_micros=5_000_000
    )

    # The worst moment: the machine is rented and the task has not recorded it. The provider
    # pauses while the task searches offers, the test takes the instance's row meanwhile, and
    # the task, once the provider has answered, waits for that row to record the machine.
    os.kill(simulator_process, signal.SIGSTOP)
    try:
        _send(provision, instance.pk, broker_url=broker.url)
        wait_until(
            lambda: Instance.objects.filter(pk=instance.pk, status=Status.PROVISIONING).exists(),
            timeout=60,
        )
        with psycopg.connect(test_database_url) as holder:
            holder.execute(
                "SELECT 1 FROM instances_instance WHERE id = %s FOR UPDATE", [instance.pk]
            )
            os.kill(simulator_process, signal.SIGCONT)
            wait_until(lambda: simulator.machines(), timeout=60)
            wait_until(lambda: _worker_sessions(waiting_for_a_lock=True), timeout=60)
            _kill_whole_worker(worker)
            # Its database sessions go with it (as with its machine): what it had sent is not run.
            _terminate_worker_sessions()
            wait_until(lambda: not _worker_sessions(), timeout=30)
    finally:
        os.kill(simulator_process, signal.SIGCONT)
    unrecorded = Instance.objects.get(pk=instance.pk)
    queued_after_kill, held_after_kill = _queued(broker), len(_unacknowledged_since(broker))

    wait_until(lambda: _past_visibility_timeout(broker), timeout=60)
    _prefork_worker(start_process, env)
    running = wait_until(
        lambda: Instance.objects.filter(pk=instance.pk, status=Status.RUNNING).first(),
        timeout=90,
    )
    wait_until(lambda: not _unacknowledged_since(broker), timeout=60)  # the rerun is over

    assert (unrecorded.status, unrecorded.provider_id) == (Status.PROVISIONING, "")
    # Neither lost nor queued again by the dead worker: held in Redis, unacknowledged.
    assert (queued_after_kill, held_after_kill) == (0, 1)
    machines = simulator.machines()
    assert [(machine["id"], machine["idempotency_key"]) for machine in machines] == [
        (running.provider_id, instance.provision_key)
    ]
    assert running.provision_attempts == 1
    events = Counter(running.events.values_list("to_status", flat=True))
    assert events == {Status.PROVISIONING: 1, Status.RUNNING: 1}


# --- (c) A usage post -----------------------------------------------------------------------------

PRICE_MICROS_PER_HOUR = 387_168  # a simulated RTX 4090
CREDIT_MICROS = 10_000_000


def _usage_entries(tenant) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.for_tenant(tenant).filter(kind=LedgerEntry.Kind.USAGE_GPU))


def test_a_usage_post_whose_worker_is_killed_whole_mid_transaction_charges_once(
    owner, broker, start_process, test_database_url
):
    from billing.tasks import post_usage

    ledger.post(
        owner.tenant,
        LedgerEntry.Kind.ADMIN_GRANT,
        CREDIT_MICROS,
        idempotency_key=f"drill-grant-{owner.tenant.pk}",
    )
    interval = metering.open_interval(
        owner.tenant.pk,
        UsageInterval.Kind.GPU,
        "drill-gpu",
        PRICE_MICROS_PER_HOUR,
        at=timezone.now() - timedelta(hours=1),
    )
    balance_before = ledger.balance_micros(owner.tenant)
    env = _worker_env(test_database_url, broker)
    worker = _prefork_worker(start_process, env)

    # Usage is posted to the database only (no Stripe call): each interval's post is one
    # transaction that locks the interval, appends the ledger entry and moves the interval's
    # posted mark. Holding the ledger stops the post between the lock and the insert.
    with psycopg.connect(test_database_url) as holder:
        holder.execute("LOCK TABLE billing_ledgerentry IN EXCLUSIVE MODE")
        _send(post_usage, broker_url=broker.url)
        wait_until(lambda: _worker_sessions(waiting_for_a_lock=True), timeout=60)
        _kill_whole_worker(worker)
    # Once the lock is gone the dead worker's session makes its insert, then finds its client
    # gone and rolls the whole transaction back.
    wait_until(lambda: not _worker_sessions(), timeout=60)
    interval.refresh_from_db()
    after_kill = (
        interval.posted_micros,
        len(_usage_entries(owner.tenant)),
        ledger.balance_micros(owner.tenant),
    )
    held_after_kill = len(_unacknowledged_since(broker))

    wait_until(lambda: _past_visibility_timeout(broker), timeout=60)
    _prefork_worker(start_process, env)
    wait_until(lambda: _usage_entries(owner.tenant), timeout=90)
    wait_until(lambda: not _unacknowledged_since(broker), timeout=60)  # the rerun is over
    interval.refresh_from_db()
    charges = _usage_entries(owner.tenant)

    assert after_kill == (0, 0, balance_before)  # no half charge
    assert held_after_kill == 1
    # The rerun charged the whole period once: price x time from the start to its post.
    assert interval.posted_micros == metering.due_micros(interval, interval.posted_until)
    assert interval.posted_micros >= PRICE_MICROS_PER_HOUR  # at least the hour before the kill
    assert [charge.amount_micros for charge in charges] == [-interval.posted_micros]
    assert ledger.balance_micros(owner.tenant) == balance_before - interval.posted_micros
