"""Plans bought through Stripe: the real `stripe` library against the local fake Stripe, whose
signed webhooks reach the API on a real port (in order, reversed, or replayed)."""

import httpx
import pytest

from accounts.models import Membership
from billing import ledger
from billing.models import CheckoutSession, Invoice, LedgerEntry, Subscription
from conftest import wait_until

pytestmark = pytest.mark.django_db(transaction=True)
TRIAL = 79_000_000
STARTER_CREDIT = 35_000_000


def _subscribe(account, plan: str = "starter") -> dict:
    response = account.client.post("/api/billing/subscription", {"plan": plan}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def _pay(checkout: dict, card_number: str = "4242424242424242") -> None:
    answer = httpx.post(
        checkout["url"], data={"action": "pay", "card_number": card_number}, timeout=10
    )
    assert answer.status_code == 303


def _subscription(account) -> Subscription:
    return Subscription.objects.get(tenant=account.tenant)


def _active(account) -> Subscription:
    def is_active():
        row = _subscription(account)
        return row.status == "active" and Invoice.objects.filter(tenant=account.tenant).exists()

    wait_until(is_active)
    return _subscription(account)


def _control(fake_stripe: str, path: str, **form) -> None:
    assert httpx.post(f"{fake_stripe}/_control/{path}", data=form, timeout=10).status_code == 200


def test_buying_starter_activates_it_and_credits_its_included_hours_once(owner, fake_stripe):
    checkout = _subscribe(owner)

    _pay(checkout)
    _pay(checkout)  # a second click on a completed session does nothing

    row = _active(owner)
    assert (checkout["mode"], checkout["plan"]) == ("subscription", "starter")
    assert (checkout["currency"], checkout["amount_minor"]) == ("BRL", 19900)
    assert (row.plan.code, row.stripe_subscription_id[:4]) == ("starter", "sub_")
    assert row.current_period_end is not None
    wait_until(lambda: ledger.balance_micros(owner.tenant) == TRIAL + STARTER_CREDIT)
    entry = LedgerEntry.objects.get(kind="subscription_credit")
    assert entry.idempotency_key.startswith("invoice:in_test_")
    assert wait_until(lambda: CheckoutSession.objects.get().status == "paid")


def test_the_subscription_shows_the_plan_and_its_entitlements(owner, fake_stripe):
    _pay(_subscribe(owner))
    _active(owner)

    body = owner.client.get("/api/billing/subscription").json()

    assert (body["status"], body["is_paid"], body["cancel_at_period_end"]) == (
        "active",
        True,
        False,
    )
    assert body["entitlements"]["plan"] == "starter"
    assert body["entitlements"]["max_instances"] == 2
    assert body["entitlements"]["has_standby"] is False
    assert body["entitlements"]["support_response_hours"] == 24


def test_invoices_are_listed_with_their_links(owner, fake_stripe):
    _pay(_subscribe(owner, "pro"))
    _active(owner)

    page = owner.client.get("/api/billing/invoices").json()

    (invoice,) = page["results"]
    assert (invoice["status"], invoice["currency"], invoice["amount_paid_minor"]) == (
        "paid",
        "USD",
        7900,
    )
    assert invoice["number"].startswith("FAKE-")
    assert httpx.get(invoice["hosted_invoice_url"], timeout=5).status_code == 200
    assert httpx.get(invoice["invoice_pdf_url"], timeout=5).status_code == 200
    assert ledger.balance_micros(owner.tenant) == TRIAL  # Pro includes no credit


def test_each_paid_renewal_credits_once_and_a_failed_one_is_past_due_and_mails_the_owner(
    owner, fake_stripe, mailoutbox
):
    _pay(_subscribe(owner))
    row = _active(owner)

    _control(fake_stripe, f"subscriptions/{row.stripe_subscription_id}/renew")
    wait_until(lambda: ledger.balance_micros(owner.tenant) == TRIAL + 2 * STARTER_CREDIT)
    _control(fake_stripe, f"subscriptions/{row.stripe_subscription_id}/fail")

    wait_until(lambda: _subscription(owner).status == "past_due")
    wait_until(lambda: any("payment failed" in mail.subject for mail in mailoutbox))
    mail = next(mail for mail in mailoutbox if "payment failed" in mail.subject)
    assert mail.to == [owner.user.email]
    assert Invoice.objects.filter(status="open").count() == 1
    assert ledger.balance_micros(owner.tenant) == TRIAL + 2 * STARTER_CREDIT


def test_events_delivered_in_reverse_order_end_in_the_same_state(owner, fake_stripe):
    _control(fake_stripe, "hold")
    _pay(_subscribe(owner))

    _control(fake_stripe, "release", order="reverse")

    row = _active(owner)
    assert row.plan.code == "starter"
    wait_until(lambda: ledger.balance_micros(owner.tenant) == TRIAL + STARTER_CREDIT)
    wait_until(lambda: CheckoutSession.objects.get().status == "paid")


def test_cancelling_keeps_the_plan_until_the_period_ends(owner, fake_stripe):
    _pay(_subscribe(owner, "pro"))
    row = _active(owner)

    response = owner.client.delete("/api/billing/subscription")
    _control(fake_stripe, f"subscriptions/{row.stripe_subscription_id}/renew")  # period ends

    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["cancel_at_period_end"]) == (
        "active",
        True,
    )
    wait_until(lambda: _subscription(owner).status == "canceled")
    body = owner.client.get("/api/billing/subscription").json()
    assert body["entitlements"]["plan"] == "pay_as_you_go"
    assert Invoice.objects.count() == 1  # no renewal was charged


def test_the_portal_link_needs_a_stripe_customer(owner, fake_stripe):
    before = owner.client.post("/api/billing/portal")
    _pay(_subscribe(owner, "pro"))
    _active(owner)

    after = owner.client.post("/api/billing/portal")

    assert (before.status_code, before.json()["code"]) == (409, "no_stripe_customer")
    assert after.status_code == 200
    page = httpx.get(after.json()["url"], timeout=5)
    assert _subscription(owner).stripe_subscription_id in page.text


def test_a_second_subscription_while_one_is_paid_is_a_409(owner, fake_stripe):
    _pay(_subscribe(owner))
    _active(owner)

    response = owner.client.post("/api/billing/subscription", {"plan": "pro"}, format="json")

    assert (response.status_code, response.json()["code"]) == (409, "already_subscribed")


@pytest.mark.parametrize(
    ("body", "code"),
    [({"plan": "enterprise"}, "invalid_choice"), ({}, "required"), ({"plan": 7}, "invalid_choice")],
)
def test_a_plan_that_cannot_be_bought_is_a_400(owner, body, code):
    response = owner.client.post("/api/billing/subscription", body, format="json")

    assert (response.status_code, response.json()["code"]) == (400, code)


def test_members_cannot_buy_or_cancel_a_plan(account_factory):
    member = account_factory(role=Membership.Role.MEMBER)

    bought = member.client.post("/api/billing/subscription", {"plan": "pro"}, format="json")
    cancelled = member.client.delete("/api/billing/subscription")

    assert (bought.status_code, cancelled.status_code) == (403, 403)


def test_cancelling_without_a_paid_plan_is_a_409(owner):
    response = owner.client.delete("/api/billing/subscription")

    assert (response.status_code, response.json()["code"]) == (409, "no_paid_subscription")
