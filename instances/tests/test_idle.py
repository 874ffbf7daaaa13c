"""The idle sweep: one query finds the running GPUs idle past their tenant's settings."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import TenantSettings
from instances.idle import idle_instance_ids
from instances.models import Instance
from instances.tasks import hibernate_idle
from instances.tests.factories import InstanceFactory

pytestmark = pytest.mark.django_db
Status = Instance.Status


def _running(minutes_idle: float, *, beat_seconds_ago: float = 2, **fields) -> Instance:
    now = timezone.now()
    values = {
        "status": Status.RUNNING,
        "running_since": now - timedelta(hours=1),
        "last_busy_at": now - timedelta(minutes=minutes_idle),
        "last_heartbeat_at": now - timedelta(seconds=beat_seconds_ago),
    }
    return InstanceFactory(**{**values, **fields})


def _settings_of(instance: Instance, **values) -> None:
    TenantSettings.objects.update_or_create(tenant=instance.tenant, defaults=values)


def test_a_gpu_idle_past_the_default_five_minutes_is_found():
    idle = _running(6)
    busy = _running(2)

    assert idle_instance_ids() == [idle.pk]
    assert busy.pk not in idle_instance_ids()


def test_the_tenants_idle_minutes_and_switch_are_respected():
    patient = _running(20)
    _settings_of(patient, idle_minutes=30)
    switched_off = _running(120)
    _settings_of(switched_off, auto_hibernate=False)
    eager = _running(2)
    _settings_of(eager, idle_minutes=1)

    assert idle_instance_ids() == [eager.pk]


def test_a_machine_that_stopped_beating_is_left_to_failover():
    _running(30, beat_seconds_ago=600)

    assert idle_instance_ids() == []


def test_a_gpu_never_busy_counts_from_when_it_started_running():
    never_busy = _running(0, last_busy_at=None)
    Instance.objects.filter(pk=never_busy.pk).update(
        running_since=timezone.now() - timedelta(minutes=7)
    )
    fresh = _running(0, last_busy_at=None)
    Instance.objects.filter(pk=fresh.pk).update(running_since=timezone.now())

    assert idle_instance_ids() == [never_busy.pk]


def test_the_sweep_is_one_query_however_many_instances():
    for minutes in range(40):
        _running(minutes % 10 + 0.5)

    with CaptureQueriesContext(connection) as queries:
        found = idle_instance_ids()

    assert len(queries) == 1
    assert len(found) == 20  # idle 5.5 to 9.5 minutes, four of each


def test_the_task_hibernates_the_idle_ones_with_a_reason(django_capture_on_commit_callbacks):
    idle = _running(8)
    _settings_of(idle, idle_threshold_percent=10, idle_minutes=5)
    busy = _running(1)

    assert hibernate_idle() == [idle.pk]

    idle.refresh_from_db()
    busy.refresh_from_db()
    assert idle.status == Status.HIBERNATING and busy.status == Status.RUNNING
    event = idle.events.order_by("-created_at").first()
    assert (event.actor, event.reason) == ("auto-hibernate", "GPU under 10% for 5 min")
    assert idle.commands.get().kind == "final_sync"


def test_waking_restarts_the_idle_clock():
    # Idle for an hour before it hibernated; woken a minute ago: its idle minutes start now.
    woken = _running(60)
    Instance.objects.filter(pk=woken.pk).update(running_since=timezone.now() - timedelta(minutes=1))

    assert idle_instance_ids() == []


def test_a_gpu_woken_longer_ago_than_its_idle_minutes_is_idle_again():
    woken = _running(60)
    Instance.objects.filter(pk=woken.pk).update(running_since=timezone.now() - timedelta(minutes=6))

    assert idle_instance_ids() == [woken.pk]
