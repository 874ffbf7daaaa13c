"""Members and roles: owners and admins manage people; an organisation keeps an owner."""

import pytest

from accounts.models import ApiToken, AuditLog, Membership
from accounts.tests.factories import UserFactory

MEMBERS = "/api/members"


@pytest.mark.django_db
def test_an_owner_adds_an_existing_account_as_a_member(owner):
    person = UserFactory(email="bob@example.com")

    response = owner.client.post(
        MEMBERS, {"email": "Bob@Example.com", "role": "admin"}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["email"] == "bob@example.com"
    assert response.json()["role"] == "admin"
    assert Membership.objects.get(user=person, tenant=owner.tenant).role == "admin"
    listed = {item["email"] for item in owner.client.get(MEMBERS).json()["results"]}
    assert listed == {owner.user.email, "bob@example.com"}


@pytest.mark.django_db
def test_adding_an_unknown_email_says_the_person_must_sign_up(owner):
    response = owner.client.post(MEMBERS, {"email": "nobody@example.com"}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "user_not_found"


@pytest.mark.django_db
def test_adding_someone_twice_is_refused(owner, account_factory):
    member = account_factory(role=Membership.Role.MEMBER, tenant=owner.tenant)

    response = owner.client.post(MEMBERS, {"email": member.user.email}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "already_member"


@pytest.mark.django_db
def test_a_member_cannot_manage_members(owner, account_factory):
    member = account_factory(role=Membership.Role.MEMBER, tenant=owner.tenant)
    UserFactory(email="carol@example.com")

    added = member.client.post(MEMBERS, {"email": "carol@example.com"}, format="json")
    promoted = member.client.patch(
        f"{MEMBERS}/{member.membership.id}", {"role": "admin"}, format="json"
    )

    assert added.status_code == 403
    assert added.json()["code"] == "permission_denied"
    assert promoted.status_code == 403
    assert Membership.objects.get(pk=member.membership.id).role == "member"


@pytest.mark.django_db
def test_an_admin_cannot_grant_the_owner_role(owner, account_factory):
    admin = account_factory(role=Membership.Role.ADMIN, tenant=owner.tenant)
    member = account_factory(role=Membership.Role.MEMBER, tenant=owner.tenant)

    response = admin.client.patch(
        f"{MEMBERS}/{member.membership.id}", {"role": "owner"}, format="json"
    )

    assert response.status_code == 403
    assert Membership.objects.get(pk=member.membership.id).role == "member"


@pytest.mark.django_db
def test_the_last_owner_can_neither_be_demoted_nor_removed(owner):
    demoted = owner.client.patch(
        f"{MEMBERS}/{owner.membership.id}", {"role": "member"}, format="json"
    )
    removed = owner.client.delete(f"{MEMBERS}/{owner.membership.id}")

    assert demoted.status_code == 409
    assert demoted.json()["code"] == "last_owner"
    assert removed.status_code == 409
    assert Membership.objects.get(pk=owner.membership.id).role == "owner"


@pytest.mark.django_db
def test_an_owner_can_step_down_once_another_owner_exists(owner, account_factory):
    second = account_factory(role=Membership.Role.OWNER, tenant=owner.tenant)

    response = owner.client.patch(
        f"{MEMBERS}/{owner.membership.id}", {"role": "admin"}, format="json"
    )

    assert response.status_code == 200
    assert Membership.objects.get(pk=owner.membership.id).role == "admin"
    assert Membership.objects.get(pk=second.membership.id).role == "owner"


@pytest.mark.django_db
def test_role_changes_are_audited(owner, account_factory):
    member = account_factory(role=Membership.Role.MEMBER, tenant=owner.tenant)

    owner.client.patch(f"{MEMBERS}/{member.membership.id}", {"role": "admin"}, format="json")

    entry = AuditLog.objects.get(action=AuditLog.Action.ROLE_CHANGED)
    assert entry.target == member.user.email
    assert entry.metadata == {"previous": "member", "role": "admin"}
    assert entry.actor == owner.user


@pytest.mark.django_db
def test_removing_a_member_revokes_their_tokens_in_that_tenant(owner, account_factory):
    member = account_factory(role=Membership.Role.MEMBER, tenant=owner.tenant)

    response = owner.client.delete(f"{MEMBERS}/{member.membership.id}")

    assert response.status_code == 204
    assert member.client.get("/api/me").status_code == 401
    assert not ApiToken.objects.active().filter(user=member.user).exists()


@pytest.mark.django_db
def test_a_member_may_leave_on_their_own(owner, account_factory):
    member = account_factory(role=Membership.Role.MEMBER, tenant=owner.tenant)

    response = member.client.delete(f"{MEMBERS}/{member.membership.id}")

    assert response.status_code == 204
    assert not Membership.objects.filter(pk=member.membership.id).exists()
