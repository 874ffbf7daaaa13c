import pytest
from django.urls import reverse

from accounts.models import AuditLog
from accounts.tests.factories import UserFactory
from billing import ledger
from billing.models import LedgerEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True, email="ops@dumont.cloud"))
    return client


def test_staff_grant_credit_with_a_reason_and_it_is_audited(staff, owner):
    response = staff.post(
        reverse("admin:billing_ledgerentry_add"),
        {
            "tenant": owner.tenant.pk,
            "kind": "admin_grant",
            "amount_usd": "12.5",
            "reason": "outage credit",
            "reference": "INC-7",
        },
    )

    assert response.status_code == 302, response.content.decode()[-2000:]
    entry = LedgerEntry.objects.get(kind="admin_grant")
    assert entry.amount_micros == 12_500_000
    assert entry.description == "outage credit (by ops@dumont.cloud)"
    assert ledger.balance_micros(owner.tenant) == 91_500_000
    audit = AuditLog.objects.get(action=AuditLog.Action.CREDIT_GRANTED)
    assert audit.metadata["reason"] == "outage credit"


def test_a_grant_without_a_reason_is_refused(staff, owner):
    response = staff.post(
        reverse("admin:billing_ledgerentry_add"),
        {"tenant": owner.tenant.pk, "kind": "admin_grant", "amount_usd": "5"},
    )

    assert response.status_code == 200  # the form again, with its error
    assert not LedgerEntry.objects.filter(kind="admin_grant").exists()


def test_ledger_entries_cannot_be_edited_or_deleted(staff, owner):
    entry = LedgerEntry.objects.get(tenant=owner.tenant)
    url = reverse("admin:billing_ledgerentry_change", args=[entry.pk])

    response = staff.post(url, {"amount_micros": 1})
    deletion = staff.post(
        reverse("admin:billing_ledgerentry_delete", args=[entry.pk]), {"post": "yes"}
    )

    assert response.status_code == 403
    assert deletion.status_code == 403
    entry.refresh_from_db()
    assert entry.amount_micros == 79_000_000
