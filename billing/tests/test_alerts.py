"""Budget thresholds and low balance alert once per crossing, by e-mail and webhook."""

from datetime import UTC, datetime

import pytest

from billing import alerts, ledger
from billing.models import Budget
from webhooks.models import WebhookDelivery

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


@pytest.fixture
def subscribed(owner, settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    response = owner.client.post(
        "/api/webhooks",
        {"url": "http://127.0.0.1:9/hooks", "events": ["balance.low", "budget.threshold"]},
        format="json",
    )
    assert response.status_code == 201, response.content
    return owner


def _events(tenant) -> list[str]:
    return list(
        WebhookDelivery.objects.filter(tenant=tenant).order_by("id").values_list("event", flat=True)
    )


def test_budget_thresholds_fire_once_each_per_month(subscribed, mailoutbox):
    tenant = subscribed.tenant
    response = subscribed.client.patch(
        "/api/billing/budget",
        {"monthly_limit_usd": "10", "thresholds_percent": [50, 80, 100]},
        format="json",
    )
    assert response.status_code == 200

    ledger.post(tenant, "usage_gpu", -6_000_000, idempotency_key="u1")
    first = alerts.check_tenant(tenant.pk, NOW)
    again = alerts.check_tenant(tenant.pk, NOW)
    ledger.post(tenant, "usage_gpu", -4_500_000, idempotency_key="u2")
    later = alerts.check_tenant(tenant.pk, NOW)

    assert first == ["budget.50"]
    assert again == []
    assert later == ["budget.80", "budget.100"]
    assert _events(tenant) == ["budget.threshold"] * 3
    assert [m.subject for m in mailoutbox] == [
        "Dumont Cloud: 50% of your monthly budget used",
        "Dumont Cloud: 80% of your monthly budget used",
        "Dumont Cloud: 100% of your monthly budget used",
    ]


def test_low_balance_alerts_once_per_crossing(subscribed, django_capture_on_commit_callbacks):
    tenant = subscribed.tenant
    Budget.objects.create(tenant=tenant, low_balance_micros=10_000_000)

    ledger.post(tenant, "usage_gpu", -70_000_000, idempotency_key="down")
    with django_capture_on_commit_callbacks(execute=True):
        crossing = alerts.check_tenant(tenant.pk, NOW)
    still_low = alerts.check_tenant(tenant.pk, NOW)
    ledger.post(tenant, "purchase", 50_000_000, idempotency_key="up")
    recovered = alerts.check_tenant(tenant.pk, NOW)
    ledger.post(tenant, "usage_gpu", -55_000_000, idempotency_key="down-again")
    second_crossing = alerts.check_tenant(tenant.pk, NOW)

    assert (crossing, still_low, recovered, second_crossing) == (
        ["balance.low"],
        [],
        [],
        ["balance.low"],
    )
    assert _events(tenant) == ["balance.low", "balance.low"]


def test_only_owners_and_admins_change_the_budget(account_factory, owner):
    member = account_factory(role="member", tenant=owner.tenant)

    response = member.client.patch("/api/billing/budget", {"monthly_limit_usd": "1"}, format="json")

    assert response.status_code == 403
    assert member.client.get("/api/billing/budget").json()["monthly_limit_usd"] is None
