"""The billing page: balance, usage per day, the ledger, credits and plans through the local
fake Stripe (simulator/payments.py, as billing's own tests use it), and the budget."""

import json
import re
from datetime import timedelta

import httpx
import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import Membership
from billing import ledger
from billing.models import Budget, CheckoutSession, LedgerEntry, Subscription
from billing.tests.conftest import fake_stripe  # noqa: F401 (the fixture)
from conftest import wait_until

pytestmark = pytest.mark.django_db


def _browser(account) -> Client:
    client = Client()
    client.force_login(account.user)
    return client


@pytest.fixture
def browser(owner) -> Client:
    return _browser(owner)


def _usage(tenant, usd_cents: int, *, days_ago: int = 0, key: str = "") -> LedgerEntry:
    entry, _ = ledger.post(
        tenant,
        LedgerEntry.Kind.USAGE_GPU,
        -usd_cents * 10_000,
        idempotency_key=key or f"usage-{tenant.pk}-{days_ago}-{usd_cents}",
        reference="i-test",
        description="RTX 4090",
    )
    if days_ago:
        moved = timezone.now() - timedelta(days=days_ago)
        LedgerEntry.objects.filter(pk=entry.pk).update(created_at=moved)
    return entry


def test_a_visitor_is_sent_to_sign_in():
    response = Client().get("/billing/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_page_shows_the_balance_of_the_ledger(browser, owner):
    ledger.post(owner.tenant, LedgerEntry.Kind.ADMIN_GRANT, 12_500_000, idempotency_key="grant")

    page = browser.get("/billing/").content.decode()

    balance = ledger.balance_micros(owner.tenant)
    assert f'data-balance-usd="{balance / 1_000_000:.2f}"' in page
    assert 'aria-current="page">Billing' in page


def test_the_usage_chart_sums_each_day_by_kind(browser, owner):
    _usage(owner.tenant, 150, days_ago=2)
    _usage(owner.tenant, 50, days_ago=2, key="second")
    _usage(owner.tenant, 75)

    page = browser.get("/billing/").content.decode()

    assert 'id="usage-chart"' in page
    data = json.loads(re.search(r'id="usage-data" type="application/json">(.*?)<', page).group(1))
    assert len(data["days"]) == 30 and data["days"][-1] == timezone.now().date().isoformat()
    gpu = next(series for series in data["series"] if series["kind"] == "usage_gpu")
    assert gpu["usd"][-3:] == [2.0, 0.0, 0.75]
    assert data["total_usd"] == "2.75"


def test_the_ledger_is_paginated_newest_first_with_the_csv_link(browser, owner):
    for cents in range(1, 31):
        _usage(owner.tenant, cents)

    first = browser.get("/billing/").content.decode()
    second = browser.get("/billing/?page=2").content.decode()

    assert 'href="/api/billing/ledger/csv"' in first
    assert first.count('class="amount debit"') == 20
    assert ">-0.30<" in first and ">-0.01<" not in first
    assert ">-0.01<" in second and "Page 2 of 2" in second
    assert browser.get("/billing/?page=abc").status_code == 200


def test_the_ledger_export_link_answers_for_the_session(browser, owner):
    response = browser.get("/api/billing/ledger/csv")

    assert response.status_code == 200
    assert response.content.decode().startswith("created_at,kind,amount_usd")


def test_the_page_costs_the_same_queries_with_many_ledger_rows(
    browser, owner, django_assert_max_num_queries
):
    for cents in range(1, 4):
        _usage(owner.tenant, cents)
    with django_assert_max_num_queries(30) as few:
        browser.get("/billing/")
    for cents in range(4, 80):
        _usage(owner.tenant, cents)

    with django_assert_max_num_queries(len(few.captured_queries)):
        browser.get("/billing/")


def test_another_tenant_sees_only_its_own_ledger(two_tenants):
    tenant_a, tenant_b = two_tenants
    ledger.post(
        tenant_a.tenant,
        LedgerEntry.Kind.ADMIN_GRANT,
        1_234_560_000,
        idempotency_key="a-only",
        description="secret grant of A",
    )

    page = _browser(tenant_b).get("/billing/").content.decode()

    assert "secret grant of A" not in page
    assert f'data-balance-usd="{ledger.balance_micros(tenant_b.tenant) / 1e6:.2f}"' in page
    assert _browser(tenant_b).post("/billing/plan/cancel/").status_code == 302
    assert not Subscription.objects.filter(tenant=tenant_a.tenant, cancel_at_period_end=True)


@pytest.mark.parametrize("method, currency", [("card", "USD"), ("pix", "BRL"), ("boleto", "BRL")])
def test_adding_credits_goes_to_the_stripe_checkout(browser, owner, fake_stripe, method, currency):  # noqa: F811
    response = browser.post("/billing/credits/", {"amount_usd": "25", "method": method})

    session = CheckoutSession.objects.get(tenant=owner.tenant)
    assert response.status_code == 302
    assert response["Location"] == session.url
    assert session.url.startswith(fake_stripe)
    assert (session.method, session.currency, session.credit_micros) == (
        method,
        currency,
        25_000_000,
    )


def test_paying_at_the_checkout_moves_the_balance_shown(browser, owner, fake_stripe):  # noqa: F811
    before = ledger.balance_micros(owner.tenant)
    checkout = browser.post("/billing/credits/", {"amount_usd": "10", "method": "card"})

    paid = httpx.post(checkout["Location"], data={"action": "pay"}, timeout=10)

    assert paid.status_code == 303
    assert "/billing/?checkout=success" in paid.headers["location"]
    wait_until(lambda: ledger.balance_micros(owner.tenant) == before + 10_000_000)
    page = browser.get("/billing/?checkout=success").content.decode()
    assert f'data-balance-usd="{(before + 10_000_000) / 1e6:.2f}"' in page
    assert "Payment received" in page


@pytest.mark.parametrize("amount", ["", "abc", "0.50", "999999", "-5"])
def test_a_bad_amount_shows_the_field_error_and_opens_no_checkout(browser, owner, amount):
    response = browser.post("/billing/credits/", {"amount_usd": amount, "method": "card"})

    assert response.status_code == 200
    assert 'class="field-error" role="alert"' in response.content.decode()
    assert not CheckoutSession.objects.exists()


def test_a_bad_method_shows_the_field_error(browser):
    response = browser.post("/billing/credits/", {"amount_usd": "10", "method": "cash"})

    assert response.status_code == 200
    assert "cash is not one of the available choices" in response.content.decode()


def test_subscribing_goes_to_the_subscription_checkout(browser, owner, fake_stripe):  # noqa: F811
    response = browser.post("/billing/plan/subscribe/", {"plan": "starter"})

    session = CheckoutSession.objects.get(tenant=owner.tenant)
    assert response["Location"] == session.url
    assert (session.mode, session.plan.code) == ("subscription", "starter")


def test_the_stripe_portal_needs_a_payment_first_then_opens(browser, owner, fake_stripe):  # noqa: F811
    refused = browser.post("/billing/plan/portal/", follow=True).content.decode()
    assert "No payment has been started yet" in refused

    assert "Cards and invoices (Stripe)" not in refused

    browser.post("/billing/plan/subscribe/", {"plan": "pro"})
    assert "Cards and invoices (Stripe)" in browser.get("/billing/").content.decode()
    response = browser.post("/billing/plan/portal/")

    assert response.status_code == 302
    assert response["Location"].startswith(fake_stripe)


def test_a_paid_plan_is_shown_and_can_be_cancelled(browser, owner, fake_stripe):  # noqa: F811
    checkout = browser.post("/billing/plan/subscribe/", {"plan": "starter"})
    assert httpx.post(checkout["Location"], data={"action": "pay"}, timeout=10).status_code == 303
    wait_until(lambda: Subscription.objects.get(tenant=owner.tenant).is_paid)
    page = browser.get("/billing/").content.decode()
    assert "<strong>Starter</strong> · Active" in page and "renews on" in page

    response = browser.post("/billing/plan/cancel/", follow=True)

    assert Subscription.objects.get(tenant=owner.tenant).cancel_at_period_end
    assert "will not renew" in response.content.decode()
    assert "ends on" in response.content.decode()


def test_cancelling_without_a_paid_plan_says_so(browser):
    page = browser.post("/billing/plan/cancel/", follow=True).content.decode()

    assert "no paid plan to cancel" in page


def test_the_budget_form_saves_the_limit_and_thresholds(browser, owner):
    response = browser.post(
        "/billing/budget/",
        {"monthly_limit_usd": "200", "thresholds_percent": "90, 50,50", "low_balance_usd": "3"},
    )

    budget = Budget.objects.get(tenant=owner.tenant)
    assert response.status_code == 302
    assert (budget.monthly_limit_micros, budget.thresholds_percent) == (200_000_000, [50, 90])
    assert budget.low_balance_micros == 3_000_000
    page = browser.get("/billing/").content.decode()
    assert 'value="50, 90"' in page and "Budget saved." in page


@pytest.mark.parametrize(
    "form",
    [
        {"monthly_limit_usd": "0", "thresholds_percent": "50", "low_balance_usd": "5"},
        {"monthly_limit_usd": "", "thresholds_percent": "half", "low_balance_usd": "5"},
        {"monthly_limit_usd": "", "thresholds_percent": "5000", "low_balance_usd": "5"},
        {"monthly_limit_usd": "", "thresholds_percent": "50", "low_balance_usd": "-1"},
    ],
)
def test_a_bad_budget_shows_the_field_error(browser, owner, form):
    response = browser.post("/billing/budget/", form)

    assert response.status_code == 200
    assert 'class="field-error" role="alert"' in response.content.decode()
    assert Budget.objects.get(tenant=owner.tenant).thresholds_percent == [50, 80, 100]


def test_a_member_sees_the_plan_but_cannot_change_it_or_the_budget(account_factory, owner):
    member = account_factory(role=Membership.Role.MEMBER, tenant=owner.tenant)
    browser = _browser(member)

    page = browser.get("/billing/").content.decode()

    assert "Owners and admins choose the plan." in page
    assert browser.post("/billing/budget/", {"thresholds_percent": "10"}).status_code == 403
    assert browser.post("/billing/plan/subscribe/", {"plan": "pro"}).status_code == 403
