"""Provisioning against the simulated market: idempotent, retried, reconciled."""

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from instances import moves, steps, tasks
from instances.models import Instance
from instances.providers import get_provider
from instances.reconcile import reconcile_all
from instances.tests.factories import InstanceFactory

Status = Instance.Status


def _machines_for(simulator, instance: Instance) -> list[dict]:
    return [m for m in simulator.machines() if m["idempotency_key"] == instance.provision_key]


@pytest.mark.django_db(transaction=True)
def test_duplicated_concurrent_provision_steps_create_one_machine(simulator):
    instance = InstanceFactory(status=Status.PENDING, max_price_micros=5_000_000)
    barrier = threading.Barrier(3)
    errors: list[Exception] = []

    def provision():
        barrier.wait()
        try:
            steps.provision(instance.pk)
        except Exception as error:  # the test reports any crash of a duplicate
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=provision) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(_machines_for(simulator, instance)) == 1
    instance.refresh_from_db()
    assert instance.status == Status.PROVISIONING
    assert instance.provider_id == _machines_for(simulator, instance)[0]["id"]
    assert instance.events.filter(to_status=Status.PROVISIONING).count() == 1


@pytest.mark.django_db
def test_a_provision_step_run_again_after_success_changes_nothing(simulator):
    instance = InstanceFactory(status=Status.PENDING, max_price_micros=5_000_000)

    steps.provision(instance.pk)
    steps.provision(instance.pk)

    assert len(_machines_for(simulator, instance)) == 1


@pytest.mark.django_db
def test_a_machine_created_by_a_task_that_died_before_saving_is_adopted(simulator):
    instance = InstanceFactory(status=Status.PENDING, max_price_micros=5_000_000)
    steps.provision(instance.pk)
    machine_id = Instance.objects.get(pk=instance.pk).provider_id
    # The worker died between the provider's answer and our write.
    Instance.objects.filter(pk=instance.pk).update(provider_id="")

    report = reconcile_all()
    steps.provision(instance.pk)  # what reconcile sent, run here

    assert report.adopted == [machine_id]
    assert Instance.objects.get(pk=instance.pk).provider_id == machine_id
    assert len(_machines_for(simulator, instance)) == 1


def _recovering_with_a_new_machine() -> Instance:
    """An instance after a failover, its replacement just rented (its agent not yet up)."""
    instance = InstanceFactory(
        status=Status.RECOVERING,
        max_price_micros=5_000_000,
        needs_restore=True,
        provision_attempts=1,  # its key is "<id>-1"
    )
    steps.recover(instance.pk)
    return instance


@pytest.mark.django_db
def test_a_failovers_new_machine_not_yet_saved_is_adopted_not_destroyed(simulator):
    """Reconcile listing the provider while a failover's replacement is being rented: the
    machine under the instance's provision key is its own, not an orphan."""
    instance = _recovering_with_a_new_machine()
    machine_id = Instance.objects.get(pk=instance.pk).provider_id
    Instance.objects.filter(pk=instance.pk).update(provider_id="")  # rented, not yet saved

    report = reconcile_all()
    steps.recover(instance.pk)  # the step reconcile sent, run here

    assert report.adopted == [machine_id] and report.orphans_destroyed == []
    assert Instance.objects.get(pk=instance.pk).provider_id == machine_id
    (machine,) = _machines_for(simulator, instance)
    assert machine["state"] != "destroyed"


@pytest.mark.django_db
def test_a_replacement_machine_that_vanishes_before_it_boots_is_replaced_again(simulator):
    instance = _recovering_with_a_new_machine()
    lost = Instance.objects.get(pk=instance.pk)
    get_provider().destroy(lost.provider_id)  # gone before its agent ever beat

    report = reconcile_all()
    steps.recover(instance.pk)  # the step reconcile sent, run here

    assert report.resent == [instance.pk]
    instance.refresh_from_db()
    assert instance.status == Status.RECOVERING
    assert instance.provision_key != lost.provision_key
    assert instance.provider_id not in ("", lost.provider_id)
    assert "looking again" in instance.status_reason
    assert _machines_for(simulator, instance)[0]["state"] != "destroyed"


@pytest.mark.django_db
def test_reconcile_destroys_a_machine_no_instance_owns(simulator):
    instance = InstanceFactory(status=Status.PENDING, max_price_micros=5_000_000)
    steps.provision(instance.pk)
    machine_id = Instance.objects.get(pk=instance.pk).provider_id
    Instance.objects.filter(pk=instance.pk).delete()

    report = reconcile_all()

    assert report.orphans_destroyed == [machine_id]


@pytest.mark.django_db
def test_an_instance_stuck_in_transit_is_retried_then_put_in_error_with_a_reason(
    simulator, settings
):
    settings.INSTANCE_STEP_RETRY_SECONDS = 60
    settings.INSTANCE_STEP_TIMEOUT_SECONDS = 300
    start = timezone.now()
    instance = InstanceFactory(status=Status.WAKING, status_changed_at=start)

    with time_machine.travel(start + timedelta(seconds=90), tick=False):
        early = reconcile_all()
    with time_machine.travel(start + timedelta(seconds=301), tick=False):
        late = reconcile_all()

    assert early.resent == [instance.pk]
    assert late.failed == [instance.pk]
    instance.refresh_from_db()
    assert instance.status == Status.ERROR
    assert instance.status_reason.startswith("stuck in waking for 5.0 min")


@pytest.mark.django_db
def test_a_running_instance_whose_machine_was_taken_back_fails_over(simulator):
    instance = InstanceFactory(status=Status.PENDING, max_price_micros=5_000_000)
    steps.provision(instance.pk)
    instance.refresh_from_db()
    lost = instance.provider_id
    Instance.objects.filter(pk=instance.pk).update(status=Status.RUNNING)
    assert simulator.post(f"/v1/machines/{lost}/interrupt").status_code == 200

    report = reconcile_all()

    assert report.failed_over == [instance.pk]
    instance.refresh_from_db()
    assert instance.status == Status.FAILING_OVER and instance.provider_id == ""
    assert "interrupted" in instance.status_reason
    (failover,) = instance.failovers.all()
    assert failover.failed_provider_id == lost and failover.rpo_seconds is None


@pytest.mark.django_db
def test_a_rate_limited_provider_during_create_is_a_503_and_creates_nothing(simulator, owner):
    simulator.post("/v1/faults", {"fail_next": 1, "fail_status": 429, "retry_after": 1})

    response = owner.client.post(
        "/api/instances", {"gpu": "RTX 4090", "max_price": 5}, format="json"
    )

    assert response.status_code == 503
    assert response.json()["code"] == "provider_unavailable"
    assert not Instance.objects.exists()


@pytest.mark.django_db
def test_a_provision_task_meeting_429s_retries_until_the_machine_exists(simulator):
    instance = InstanceFactory(status=Status.PENDING, max_price_micros=5_000_000)
    simulator.post("/v1/faults", {"fail_next": 3, "fail_status": 429, "retry_after": 0})

    tasks.provision.apply(args=[instance.pk])  # eager: Celery's own retries run inline

    instance.refresh_from_db()
    assert instance.status == Status.PROVISIONING
    assert len(_machines_for(simulator, instance)) == 1


@pytest.mark.django_db
def test_a_provider_that_refuses_for_good_puts_the_instance_in_error(simulator):
    instance = InstanceFactory(status=Status.PENDING, gpu="H100", max_price_micros=1)

    tasks.provision.apply(args=[instance.pk])

    instance.refresh_from_db()
    assert instance.status == Status.ERROR
    assert "no offer" in instance.status_reason


@pytest.mark.django_db
def test_a_failover_left_half_done_by_a_dead_worker_is_resumed(simulator, settings):
    settings.INSTANCE_STEP_RETRY_SECONDS = 60
    instance = InstanceFactory(status=Status.PENDING, max_price_micros=5_000_000)
    steps.provision(instance.pk)
    Instance.objects.filter(pk=instance.pk).update(status=Status.RUNNING)
    simulator.post(f"/v1/machines/{Instance.objects.get(pk=instance.pk).provider_id}/interrupt")
    reconcile_all()  # → failing_over; the recover task it queued is lost with its worker
    later = timezone.now() + timedelta(seconds=61)

    with time_machine.travel(later, tick=False):
        report = reconcile_all()
    steps.recover(instance.pk)  # what the resent task runs

    assert instance.pk in report.resent
    instance.refresh_from_db()
    assert instance.status == Status.RECOVERING and instance.provider_id
    assert instance.failovers.get().failed_provider_id != instance.provider_id


@pytest.mark.django_db
def test_a_failover_whose_instance_ends_in_error_is_recorded_failed(simulator):
    instance = InstanceFactory(status=Status.PENDING, max_price_micros=5_000_000)
    steps.provision(instance.pk)
    Instance.objects.filter(pk=instance.pk).update(status=Status.RUNNING)
    simulator.post(f"/v1/machines/{Instance.objects.get(pk=instance.pk).provider_id}/interrupt")
    reconcile_all()
    assert instance.failovers.get().status == "in_progress"

    moves.mark_error(Instance.objects.get(pk=instance.pk), actor="system", reason="given up")

    assert instance.failovers.get().status == "failed"
