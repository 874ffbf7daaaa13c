"""One trial per person by card too; an invoice credits once whatever the events; an expired
trial without credit cannot create instances (402)."""

import json
import time

import httpx
import pytest
import stripe

from billing import ledger
from billing.models import LedgerEntry, Subscription
from billing.tests.conftest import SECRET
from billing.trial import expire_trial
from conftest import wait_until

TRIAL = 79_000_000


def _top_up(account, card_number: str) -> None:
    response = account.client.post(
        "/api/billing/checkout", {"amount_usd": "25", "method": "card"}, format="json"
    )
    assert response.status_code == 201, response.content
    answer = httpx.post(
        response.json()["url"], data={"action": "pay", "card_number": card_number}, timeout=10
    )
    assert answer.status_code == 303


@pytest.mark.django_db(transaction=True)
def test_a_card_that_paid_for_another_trial_revokes_this_trial_and_tells_the_owner(
    two_tenants, fake_stripe, mailoutbox
):
    first, second = two_tenants
    _top_up(first, "4000056655665556")
    wait_until(lambda: ledger.balance_micros(first.tenant) == TRIAL + 25_000_000)

    _top_up(second, "4000056655665556")

    wait_until(lambda: LedgerEntry.objects.filter(kind="trial_expiry").exists())
    wait_until(lambda: ledger.balance_micros(second.tenant) == 25_000_000)  # the top-up stays
    assert ledger.balance_micros(first.tenant) == TRIAL + 25_000_000
    assert Subscription.objects.get(tenant=second.tenant).status == "expired"
    mail = next(mail for mail in mailoutbox if "trial credit removed" in mail.subject)
    assert mail.to == [second.user.email]


@pytest.mark.django_db(transaction=True)
def test_different_cards_keep_both_trials(two_tenants, fake_stripe):
    first, second = two_tenants

    _top_up(first, "4242424242424242")
    _top_up(second, "5555555555554444")

    wait_until(lambda: ledger.balance_micros(second.tenant) == TRIAL + 25_000_000)
    wait_until(lambda: ledger.balance_micros(first.tenant) == TRIAL + 25_000_000)
    assert not LedgerEntry.objects.filter(kind="trial_expiry").exists()


def _invoice_event(event_id: str, tenant_id: int) -> str:
    invoice = {
        "id": "in_test_replayed",
        "object": "invoice",
        "customer": "cus_test_unknown",
        "number": "TEST-0001",
        "status": "paid",
        "currency": "brl",
        "amount_due": 19900,
        "amount_paid": 19900,
        "period_start": 1_790_000_000,
        "period_end": 1_792_592_000,
        "created": 1_790_000_000,
        "parent": {
            "type": "subscription_details",
            "subscription_details": {
                "subscription": "sub_test_x",
                "metadata": {"tenant_id": str(tenant_id), "plan": "starter"},
            },
        },
    }
    event = {"id": event_id, "object": "event", "type": "invoice.paid", "created": int(time.time())}
    return json.dumps({**event, "data": {"object": invoice}})


@pytest.mark.django_db
def test_an_invoice_paid_twice_under_two_event_ids_credits_once(owner, client, settings):
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    answers = []

    for event_id in ("evt_a", "evt_b", "evt_a"):
        payload = _invoice_event(event_id, owner.tenant.pk)
        header = stripe.WebhookSignature.generate_signature_header(payload, SECRET)
        answers.append(
            client.post(
                "/api/billing/stripe/webhook",
                payload,
                content_type="application/json",
                HTTP_STRIPE_SIGNATURE=header,
            ).json()["outcome"]
        )

    assert answers == ["credited", "already credited", "duplicate"]
    assert ledger.balance_micros(owner.tenant) == TRIAL + 35_000_000
    assert owner.client.get("/api/billing/invoices").json()["count"] == 1


@pytest.mark.django_db
def test_the_plans_list_their_entitlements(anonymous):
    plans = {plan["code"]: plan for plan in anonymous.get("/api/billing/plans").json()}

    assert plans["starter"]["included_credit_micros"] == 35_000_000
    assert (plans["pro"]["has_standby"], plans["pro"]["max_instances"]) == (True, 10)
    assert plans["enterprise"]["support_response_hours"] == 1


@pytest.mark.django_db(transaction=True)
def test_an_expired_trial_without_credit_cannot_create_an_instance(owner, simulator):
    expire_trial(Subscription.objects.get(tenant=owner.tenant))

    response = owner.client.post(
        "/api/instances", {"gpu": "RTX 4090", "max_price": 2.0}, format="json"
    )

    assert (response.status_code, response.json()["code"]) == (402, "insufficient_credits")
    assert ledger.balance_micros(owner.tenant) == 0
    assert owner.client.get("/api/billing/subscription").json()["entitlements"]["plan"] == (
        "pay_as_you_go"
    )
