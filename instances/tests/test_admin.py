"""Support staff act on instances from the admin; every action goes through the state machine
and into the audit log."""

import pytest
from django.urls import reverse

from accounts.models import AuditLog
from accounts.tests.factories import UserFactory
from instances.models import Instance
from instances.tests.factories import InstanceFactory

pytestmark = pytest.mark.django_db
Status = Instance.Status
CHANGELIST = reverse("admin:instances_instance_changelist")


@pytest.fixture
def staff(client):
    user = UserFactory(is_staff=True, is_superuser=True, email="support@dumont.cloud")
    client.force_login(user)
    return client


def _act(client, action: str, *instances: Instance):
    return client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [instance.pk for instance in instances]},
        follow=True,
    )


def test_force_stop_hibernates_a_running_instance_and_is_audited(staff):
    instance = InstanceFactory(status=Status.RUNNING)

    response = _act(staff, "instance_force_stopped", instance)

    assert response.status_code == 200
    instance.refresh_from_db()
    assert instance.status == Status.HIBERNATING
    event = instance.events.get()
    assert (event.actor, event.reason) == ("admin:support@dumont.cloud", "stopped by support")
    audit = AuditLog.objects.get(action=AuditLog.Action.INSTANCE_FORCE_STOPPED)
    assert (audit.tenant, audit.actor_email, audit.target) == (
        instance.tenant,
        "support@dumont.cloud",
        f"instance {instance.pk}",
    )


def test_retry_provisioning_moves_an_errored_instance_back_to_pending_with_a_new_key(staff):
    instance = InstanceFactory(status=Status.ERROR, provision_attempts=1)

    _act(staff, "instance_retried", instance)

    instance.refresh_from_db()
    assert instance.status == Status.PENDING
    assert instance.provision_key == f"{instance.pk}-2"
    assert AuditLog.objects.filter(action=AuditLog.Action.INSTANCE_PROVISION_RETRIED).count() == 1


def test_an_action_the_state_machine_refuses_changes_nothing_and_is_not_audited(staff):
    instance = InstanceFactory(status=Status.RUNNING)

    response = _act(staff, "instance_retried", instance)

    assert "cannot become pending" in response.content.decode()
    instance.refresh_from_db()
    assert instance.status == Status.RUNNING
    assert not AuditLog.objects.filter(action=AuditLog.Action.INSTANCE_PROVISION_RETRIED).exists()


def test_mark_error_records_the_support_reason(staff):
    instance = InstanceFactory(status=Status.PROVISIONING)

    _act(staff, "instance_marked_error", instance)

    instance.refresh_from_db()
    assert (instance.status, instance.status_reason) == (Status.ERROR, "marked by support")


def test_the_admin_filters_instances_by_status_and_finds_them_by_tenant_name(staff):
    running = InstanceFactory(status=Status.RUNNING, name="needle-box")
    InstanceFactory(status=Status.HIBERNATED, name="haystack-box")

    by_status = staff.get(CHANGELIST, {"status__exact": "running"}).content.decode()
    by_search = staff.get(CHANGELIST, {"q": running.tenant.name}).content.decode()

    assert "needle-box" in by_status and "haystack-box" not in by_status
    assert "needle-box" in by_search
