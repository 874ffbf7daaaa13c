import threading

import pytest
from django.db import connection

from accounts.services import create_tenant, sign_up
from accounts.tests.factories import UserFactory
from billing import ledger, trial
from billing.models import LedgerEntry, Subscription

pytestmark = pytest.mark.django_db


def test_a_signup_starts_a_seven_day_pro_trial_with_79_dollars(anonymous):
    response = anonymous.post(
        "/api/auth/signup",
        {"email": "Ada@Example.com", "password": "a long passphrase", "organization": "Ada"},
        format="json",
    )
    token = response.json()["token"]

    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    balance = anonymous.get("/api/billing/balance").json()
    subscription = anonymous.get("/api/billing/subscription").json()

    assert balance == {"balance_micro_usd": 79_000_000, "balance_usd": "79.00", "currency": "USD"}
    assert subscription["status"] == "trialing"
    assert subscription["plan"]["code"] == "pro"


def test_one_person_gets_one_trial_however_many_organisations_they_create():
    person = UserFactory(email="grace@example.com")
    first = create_tenant("First", person)
    second = create_tenant("Second", person)

    assert ledger.balance_micros(first) == 79_000_000
    assert ledger.balance_micros(second) == 0
    assert not Subscription.objects.filter(tenant=second).exists()


def test_a_ledger_key_is_posted_once_however_often_it_is_replayed(owner):
    results = [
        ledger.post(owner.tenant, "purchase", 5_000_000, idempotency_key="evt_123")
        for _ in range(100)
    ]

    assert [created for _, created in results].count(True) == 1
    assert LedgerEntry.objects.filter(idempotency_key="evt_123").count() == 1
    assert ledger.balance_micros(owner.tenant) == 84_000_000


@pytest.mark.django_db(transaction=True)
def test_64_concurrent_debits_leave_the_exact_balance(owner):
    barrier = threading.Barrier(64)

    def debit(n):
        barrier.wait()
        try:
            ledger.post(owner.tenant, "usage_gpu", -123_457, idempotency_key=f"debit-{n}")
        finally:
            connection.close()

    threads = [threading.Thread(target=debit, args=(n,)) for n in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert ledger.balance_micros(owner.tenant) == 79_000_000 - 64 * 123_457


def test_unspent_trial_credit_lapses_at_the_end_but_purchased_credit_stays(owner):
    ledger.post(owner.tenant, "usage_gpu", -9_000_000, idempotency_key="used")
    ledger.post(owner.tenant, "purchase", 20_000_000, idempotency_key="bought")

    lapsed = trial.expire_trial(Subscription.objects.get(tenant=owner.tenant))
    again = trial.expire_trial(Subscription.objects.get(tenant=owner.tenant))

    assert lapsed == 70_000_000
    assert again == 0
    assert ledger.balance_micros(owner.tenant) == 20_000_000
    assert Subscription.objects.get(tenant=owner.tenant).status == "expired"


def test_the_ledger_lists_and_exports_every_entry_of_the_tenant_only(two_tenants):
    a, b = two_tenants
    ledger.post(a.tenant, "admin_grant", 1_500_000, idempotency_key="g1", description="goodwill")

    listed = a.client.get("/api/billing/ledger").json()
    csv_text = a.client.get("/api/billing/ledger/csv").content.decode()
    other = b.client.get("/api/billing/ledger").json()

    assert [row["kind"] for row in listed["results"]] == ["admin_grant", "trial_grant"]
    assert listed["results"][0]["amount_usd"] == "1.50"
    assert "goodwill" in csv_text and csv_text.startswith("created_at,kind,amount_usd")
    assert [row["kind"] for row in other["results"]] == ["trial_grant"]


def test_signup_through_the_service_is_one_transaction_with_its_trial():
    result = sign_up("lin@example.com", "a long passphrase", "Lin", ip=None)

    assert ledger.balance_micros(result.tenant) == 79_000_000
