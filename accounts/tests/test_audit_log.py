import pytest

from accounts.models import Membership


@pytest.mark.django_db
def test_owners_read_their_audit_log_newest_first(owner):
    owner.client.post("/api/tokens", {"name": "ci"}, format="json")

    response = owner.client.get("/api/audit-log")

    assert response.status_code == 200
    actions = [entry["action"] for entry in response.json()["results"]]
    assert actions[0] == "token_created"
    assert response.json()["results"][0]["actor_email"] == owner.user.email


@pytest.mark.django_db
def test_the_audit_log_filters_by_action(owner):
    owner.client.post("/api/tokens", {"name": "ci"}, format="json")
    owner.client.patch("/api/settings/standby", {"idle_minutes": 9}, format="json")

    response = owner.client.get("/api/audit-log?action=settings_changed")

    assert [entry["action"] for entry in response.json()["results"]] == ["settings_changed"]


@pytest.mark.django_db
def test_members_cannot_read_the_audit_log(owner, account_factory):
    member = account_factory(role=Membership.Role.MEMBER, tenant=owner.tenant)

    response = member.client.get("/api/audit-log")

    assert response.status_code == 403
