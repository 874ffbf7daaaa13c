"""Standby Config: auto-hibernate on by default at < 5 % GPU for 5 minutes."""

import pytest

from accounts.models import AuditLog, Membership

STANDBY = "/api/settings/standby"


@pytest.mark.django_db
def test_a_new_tenant_hibernates_idle_gpus_by_default(owner):
    response = owner.client.get(STANDBY)

    assert response.status_code == 200
    body = response.json()
    assert (body["auto_hibernate"], body["idle_threshold_percent"], body["idle_minutes"]) == (
        True,
        5,
        5,
    )


@pytest.mark.django_db
def test_an_admin_changes_the_standby_config_and_it_is_audited(owner):
    response = owner.client.patch(
        STANDBY, {"auto_hibernate": False, "idle_minutes": 15}, format="json"
    )

    assert response.status_code == 200
    assert owner.client.get(STANDBY).json()["auto_hibernate"] is False
    assert owner.client.get(STANDBY).json()["idle_minutes"] == 15
    entry = AuditLog.objects.get(action=AuditLog.Action.SETTINGS_CHANGED)
    assert entry.metadata["before"] == {"auto_hibernate": True, "idle_minutes": 5}
    assert entry.metadata["after"] == {"auto_hibernate": False, "idle_minutes": 15}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change",
    [
        {"idle_threshold_percent": 0},
        {"idle_threshold_percent": 101},
        {"idle_minutes": 0},
        {"idle_minutes": "soon"},
        {"auto_hibernate": "maybe"},
    ],
)
def test_out_of_range_values_are_refused(owner, change):
    response = owner.client.patch(STANDBY, change, format="json")

    assert response.status_code == 400
    assert response.json()["errors"].keys() == change.keys()
    assert owner.client.get(STANDBY).json()["idle_minutes"] == 5


@pytest.mark.django_db
def test_a_member_reads_but_cannot_change_the_standby_config(owner, account_factory):
    member = account_factory(role=Membership.Role.MEMBER, tenant=owner.tenant)

    assert member.client.get(STANDBY).status_code == 200
    response = member.client.put(
        STANDBY,
        {"auto_hibernate": False, "idle_threshold_percent": 5, "idle_minutes": 5},
        format="json",
    )

    assert response.status_code == 403
    assert owner.client.get(STANDBY).json()["auto_hibernate"] is True
