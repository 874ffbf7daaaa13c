"""Top-ups through Stripe Checkout: the real `stripe` library against a local fake Stripe
(`python -m simulator.payments`), whose webhooks reach the API on a real port."""

import json
import random
import time

import httpx
import pytest
import stripe

from billing import ledger
from billing.models import CheckoutSession, LedgerEntry, StripeEvent
from billing.tests.conftest import SECRET
from conftest import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _checkout(account, amount: str, method: str) -> dict:
    response = account.client.post(
        "/api/billing/checkout", {"amount_usd": amount, "method": method}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def _press(checkout: dict, action: str = "pay") -> None:
    answer = httpx.post(checkout["url"], data={"action": action}, follow_redirects=False)
    assert answer.status_code == 303


def _balance(account) -> int:
    return ledger.balance_micros(account.tenant)


def test_a_card_top_up_credits_the_balance_once(owner, fake_stripe):
    checkout = _checkout(owner, "25", "card")

    _press(checkout)
    _press(checkout)  # a second click on a paid session does nothing

    wait_until(lambda: _balance(owner) == 104_000_000)
    entry = LedgerEntry.objects.get(kind="purchase")
    assert (entry.currency, entry.amount_minor, entry.fx_rate) == ("USD", 2500, None)
    assert CheckoutSession.objects.get().status == "paid"


def test_pix_is_charged_in_reais_at_the_recorded_rate(owner, fake_stripe):
    checkout = _checkout(owner, "25", "pix")

    _press(checkout)

    wait_until(lambda: _balance(owner) == 104_000_000)
    entry = LedgerEntry.objects.get(kind="purchase")
    assert (checkout["currency"], checkout["amount_minor"]) == ("BRL", 13500)
    assert (entry.currency, entry.amount_minor, str(entry.fx_rate)) == ("BRL", 13500, "5.40000000")


def test_a_boleto_credits_only_when_the_bank_confirms_it(owner, fake_stripe):
    checkout = _checkout(owner, "10", "boleto")

    _press(checkout)
    wait_until(lambda: CheckoutSession.objects.get().status == "awaiting_payment")
    before = _balance(owner)
    _press(checkout, "boleto_paid")

    assert before == 79_000_000
    wait_until(lambda: _balance(owner) == 89_000_000)


def test_an_expired_boleto_credits_nothing(owner, fake_stripe):
    checkout = _checkout(owner, "10", "boleto")

    _press(checkout)
    wait_until(lambda: CheckoutSession.objects.get().status == "awaiting_payment")
    _press(checkout, "boleto_failed")

    wait_until(lambda: CheckoutSession.objects.get().status == "failed")
    assert _balance(owner) == 79_000_000


def _event(event_id: str, event_type: str, session_id: str, payment_status: str) -> str:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": event_type,
            "created": int(time.time()),
            "data": {
                "object": {
                    "id": session_id,
                    "object": "checkout.session",
                    "payment_status": payment_status,
                }
            },
        }
    )


def _post_event(client, payload: str, secret: str = SECRET):
    header = stripe.WebhookSignature.generate_signature_header(payload, secret)
    return client.post(
        "/api/billing/stripe/webhook",
        payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=header,
    )


@pytest.fixture
def boleto_session(owner, settings):
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    return CheckoutSession.objects.create(
        tenant=owner.tenant,
        stripe_session_id="cs_test_replayed",
        method="boleto",
        credit_micros=30_000_000,
        currency="BRL",
        amount_minor=16200,
        url="http://127.0.0.1:9/pay/cs_test_replayed",
    )


def test_events_replayed_100_times_out_of_order_credit_exactly_once(owner, boleto_session, client):
    events = [
        _event("evt_completed", "checkout.session.completed", "cs_test_replayed", "unpaid"),
        _event("evt_paid", "checkout.session.async_payment_succeeded", "cs_test_replayed", "paid"),
    ] * 100
    random.Random(7).shuffle(events)

    answers = [_post_event(client, payload).status_code for payload in events]

    assert set(answers) == {200}
    assert LedgerEntry.objects.filter(kind="purchase").count() == 1
    assert _balance(owner) == 109_000_000
    assert StripeEvent.objects.count() == 2
    boleto_session.refresh_from_db()
    assert boleto_session.status == "paid"


def test_a_bad_signature_is_a_400_and_writes_nothing(owner, boleto_session, client):
    payload = _event(
        "evt_forged", "checkout.session.async_payment_succeeded", "cs_test_replayed", "paid"
    )

    response = _post_event(client, payload, secret="whsec_someone_else")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_signature"
    assert not StripeEvent.objects.exists()
    assert _balance(owner) == 79_000_000


@pytest.mark.parametrize(("amount", "code"), [("2", "invalid_amount"), ("0", "min_value")])
def test_a_top_up_outside_the_limits_is_a_400(owner, amount, code):
    response = owner.client.post(
        "/api/billing/checkout", {"amount_usd": amount, "method": "card"}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == code
