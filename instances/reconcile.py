"""Reconcile: make the database and the provider agree, and let nothing hang in transit.

- An instance in a transitional status longer than INSTANCE_STEP_RETRY_SECONDS gets its step
  sent again (steps are idempotent); past INSTANCE_STEP_TIMEOUT_SECONDS it goes to `error`
  with a reason, for a person or a retry.
- A running instance whose machine the provider reports interrupted, destroyed or unknown, or
  whose agent has not beaten for FAILOVER_HEARTBEAT_TIMEOUT_SECONDS, fails over
  (instances/recovery.py).
- A machine no live instance owns is destroyed; one that a crashed provision task created but
  never recorded (its idempotency key is the instance's provision key) is adopted.
"""

import logging
from dataclasses import asdict, dataclass, field
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from instances import recovery, standby, tasks_queue
from instances.exceptions import InvalidTransition
from instances.models import Instance, Standby
from instances.moves import mark_error
from instances.providers import get_provider
from instances.providers.base import Machine, MachineNotFound, MachineState, ProviderError
from instances.transitions import TRANSITIONAL

logger = logging.getLogger(__name__)

Status = Instance.Status
STEP_OF_STATUS = {
    Status.PENDING: "provision",
    Status.PROVISIONING: "provision",
    Status.HIBERNATING: "stop",
    Status.WAKING: "start",
    Status.DELETING: "destroy",
    Status.FAILING_OVER: "recover",
    Status.RECOVERING: "recover",
}
LOST_STATES = {MachineState.INTERRUPTED, MachineState.DESTROYED}


@dataclass
class ReconcileReport:
    resent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    orphans_destroyed: list[str] = field(default_factory=list)
    failed_over: list[str] = field(default_factory=list)
    standbys_replaced: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def _silent_machines(report: ReconcileReport) -> None:
    """Running instances whose agent stopped beating: the machine is as good as lost."""
    timeout = settings.FAILOVER_HEARTBEAT_TIMEOUT_SECONDS
    cutoff = timezone.now() - timedelta(seconds=timeout)
    silent = Instance.objects.filter(status=Status.RUNNING, last_heartbeat_at__lt=cutoff)
    for instance in silent.only("pk"):
        if recovery.fail_over(instance.pk, reason=f"no heartbeat for {timeout} s"):
            report.failed_over.append(instance.pk)


def reconcile_all() -> ReconcileReport:
    """One pass over stuck instances and over the provider's machines."""
    report = ReconcileReport()
    _unstick(report)
    _silent_machines(report)
    try:
        report.standbys_replaced = standby.check_standbys(timezone.now())
    except ProviderError as error:
        logger.warning("reconcile: the standby provider failed: %s", error)
    try:
        machines = get_provider().list_machines()
    except ProviderError as error:
        logger.warning("reconcile: the provider did not list machines: %s", error)
        return report
    _compare_machines(machines, report)
    return report


def _unstick(report: ReconcileReport) -> None:
    now = timezone.now()
    retry_before = now - timedelta(seconds=settings.INSTANCE_STEP_RETRY_SECONDS)
    give_up_before = now - timedelta(seconds=settings.INSTANCE_STEP_TIMEOUT_SECONDS)
    stuck = Instance.objects.filter(
        status__in=TRANSITIONAL, status_changed_at__lt=retry_before
    ).only("id", "status", "status_changed_at")
    # on_standby can last as long as the market has no GPU: users are served meanwhile, so it
    # only gets its recover step again, never `error`.
    waiting = Instance.objects.filter(
        status=Status.ON_STANDBY, status_changed_at__lt=retry_before
    ).values_list("id", flat=True)
    for instance_id in waiting:
        tasks_queue.send("recover", instance_id)
        report.resent.append(instance_id)
    for instance in stuck.iterator():
        if instance.status_changed_at < give_up_before:
            minutes = round((now - instance.status_changed_at).total_seconds() / 60, 1)
            try:
                mark_error(
                    instance,
                    actor="reconcile",
                    reason=f"stuck in {instance.status} for {minutes} min",
                )
                report.failed.append(instance.pk)
            except InvalidTransition:
                pass
        elif instance.status in STEP_OF_STATUS:
            tasks_queue.send(STEP_OF_STATUS[instance.status], instance.pk)
            report.resent.append(instance.pk)


def _replace_if_vanished(provider, instance: Instance, report: ReconcileReport) -> None:
    """A booting instance's machine is missing from the listing, or lost: asked again (the
    listing is older than our rows, so a machine created since is not in it), a machine
    really gone is replaced under a new provision key instead of waiting to time out."""
    try:
        state = provider.get(instance.provider_id).state
    except MachineNotFound:
        state = "gone"
    except ProviderError as error:
        logger.warning("reconcile: could not check %s: %s", instance.provider_id, error)
        return
    if state in LOST_STATES or state == "gone":
        status = recovery.machine_vanished_while_booting(instance.pk, instance.provider_id, state)
        if status:
            tasks_queue.send(STEP_OF_STATUS[status], instance.pk)
            report.resent.append(instance.pk)


def _compare_machines(machines: list[Machine], report: ReconcileReport) -> None:
    provider = get_provider()
    by_id = {machine.provider_id: machine for machine in machines}
    owned = {
        instance.provider_id: instance
        for instance in Instance.objects.filter(provider=provider.name).exclude(provider_id="")
    }
    # A booting instance (a first machine, a wake on a new one, a failover's replacement)
    # between the provider's create and our save: its machine carries its provision key.
    by_key = {
        instance.provision_key: instance
        for instance in Instance.objects.filter(status__in=recovery.BOOTING, provider_id="")
    }
    # Standby VMs may live at the same provider (the simulator runs both): they are not orphans.
    standbys = set(
        Standby.objects.filter(provider=provider.name)
        .current()
        .values_list("provider_id", flat=True)
    )
    for machine in machines:
        if machine.state == MachineState.DESTROYED or machine.provider_id in owned:
            continue
        if machine.provider_id in standbys or machine.idempotency_key.count("-standby-"):
            continue
        instance = by_key.get(machine.idempotency_key)
        if instance is not None:
            # Its step is creating it now, or died between the create and the save: the step
            # (sent again) finds it under the key.
            tasks_queue.send(STEP_OF_STATUS[instance.status], instance.pk)
            report.adopted.append(machine.provider_id)
            continue
        tasks_queue.send("destroy_machine", machine.provider_id)
        report.orphans_destroyed.append(machine.provider_id)
    for provider_id, instance in owned.items():
        machine = by_id.get(provider_id)
        if instance.status == Status.RUNNING and (machine is None or machine.state in LOST_STATES):
            state = machine.state.value if machine else "gone"
            if recovery.check_machine_lost(instance, state):
                report.failed_over.append(instance.pk)
        elif instance.status in recovery.BOOTING and (
            machine is None or machine.state in LOST_STATES
        ):
            _replace_if_vanished(provider, instance, report)
        elif instance.status == Status.DELETED and machine and machine.state != "destroyed":
            tasks_queue.send("destroy_machine", provider_id)
            report.orphans_destroyed.append(provider_id)
