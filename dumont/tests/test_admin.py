"""Support staff work in the Django admin: every registered model's pages render."""

import pytest
from django.contrib import admin
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from accounts.models import ApiToken, AuditLog, SshKey, Tenant, User
from accounts.tests.factories import UserFactory
from instances.commands import queue_command
from instances.tests.factories import InstanceFactory
from instances.transitions import transition

ED25519_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGqGZpZ4hDXaFy0qzSs5DhiW1vx2Sh3xZzG8rO7vSbWp a@b"


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def populated(owner):
    owner.client.post("/api/ssh-keys", {"name": "laptop", "public_key": ED25519_KEY}, format="json")
    instance = InstanceFactory(tenant=owner.tenant, status="running")
    transition(instance, "hibernating", reason="admin page test")
    queue_command(instance, "ping")
    return owner


def _admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "model", list(admin.site._registry), ids=lambda model: model._meta.label_lower
)
def test_every_admin_list_and_detail_page_renders(staff_client, populated, model):
    listing = staff_client.get(_admin_url(model, "changelist"))
    first = model.objects.order_by("pk").first()

    assert listing.status_code == 200
    if first is not None:
        assert staff_client.get(_admin_url(model, "change", first.pk)).status_code == 200


@pytest.mark.django_db
def test_the_admin_never_shows_a_token_plaintext(staff_client, owner):
    page = staff_client.get(_admin_url(ApiToken, "change", ApiToken.objects.get().pk))

    assert owner.token not in page.content.decode()
    assert ApiToken.objects.get().prefix in page.content.decode()


@pytest.mark.django_db
def test_tenants_are_searchable_by_member_email(staff_client, owner):
    page = staff_client.get(_admin_url(Tenant, "changelist"), {"q": owner.user.email})

    assert owner.tenant.name in page.content.decode()


@pytest.mark.django_db
def test_the_audit_log_is_read_only_in_the_admin(staff_client, populated):
    entry = AuditLog.objects.first()

    response = staff_client.post(_admin_url(AuditLog, "change", entry.pk), {"action": "login"})

    assert response.status_code == 403
    assert staff_client.get(_admin_url(AuditLog, "add")).status_code == 403
    assert AuditLog.objects.get(pk=entry.pk).action == entry.action


@pytest.mark.django_db
def test_periodic_schedules_are_editable_in_the_admin(staff_client):
    assert staff_client.get(_admin_url(PeriodicTask, "add")).status_code == 200
    assert {User, SshKey, PeriodicTask} <= set(admin.site._registry)
