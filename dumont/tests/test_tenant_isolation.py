"""Tenant isolation, the first security rule: walk EVERY /api/ route as tenant B.

Routes are enumerated from Django's resolver, so a new route fails
`test_every_api_route_is_covered` until it gets a case in ROUTES below. For each route tenant B
calls every method it allows, against objects made by tenant A:
- a detail route answers 404, and A's rows are unchanged;
- a list or singleton route answers without any of A's data, and A's rows are unchanged;
- no answer is a 5xx, and no answer contains A's marker (a string unique to A's object).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import models
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts.models import ApiToken, AuditLog, Membership, SshKey, TenantSettings
from accounts.tests.factories import UserFactory
from billing import ledger
from billing.models import Budget, Invoice, LedgerEntry, Plan, Subscription
from conftest import Account
from instances.models import Instance
from instances.tests.factories import InstanceFactory
from snapshots.models import Snapshot
from spot.models import PriceAlert
from support.models import Ticket
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import emit

ED25519_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGqGZpZ4hDXaFy0qzSs5DhiW1vx2Sh3xZzG8rO7vSbWp alpha@host"
)


@dataclass(frozen=True)
class Made:
    """What a case made as tenant A: URL kwargs for detail routes and a marker B must not see."""

    kwargs: dict[str, Any] = field(default_factory=dict)
    marker: str = ""


@dataclass(frozen=True)
class Case:
    kind: str  # "public", "detail", "list", "singleton" or "shared" (market data, any tenant)
    make: Callable[[Account], Made] | None = None
    model: type[models.Model] | None = None  # A's rows of it must not change
    body: dict[str, Any] = field(default_factory=dict)  # what B sends on writes


def _make_token(a: Account) -> Made:
    response = a.client.post("/api/tokens", {"name": "alpha-token-name"}, format="json")
    return Made({"pk": response.json()["id"]}, "alpha-token-name")


def _make_ssh_key(a: Account) -> Made:
    response = a.client.post(
        "/api/ssh-keys", {"name": "alpha-key-name", "public_key": ED25519_KEY}, format="json"
    )
    assert response.status_code == 201, response.content
    return Made({"pk": response.json()["id"]}, "alpha-key-name")


def _make_member(a: Account) -> Made:
    person = UserFactory(email="alpha-member@example.com")
    membership = Membership.objects.create(user=person, tenant=a.tenant)
    return Made({"pk": membership.pk}, "alpha-member@example.com")


def _make_audit_entries(a: Account) -> Made:
    a.client.post("/api/tokens", {"name": "alpha-audited"}, format="json")
    return Made({}, "alpha-audited")


def _make_settings(a: Account) -> Made:
    response = a.client.patch("/api/settings/standby", {"idle_minutes": 437}, format="json")
    assert response.status_code == 200
    return Made({}, '"idle_minutes":437')  # a bare 437 turns up in timestamps


def _make_profile(a: Account) -> Made:
    return Made({}, a.tenant.name)


def _make_instance(a: Account) -> Made:
    instance = InstanceFactory(
        tenant=a.tenant, name="alpha-instance-name", status=Instance.Status.RUNNING
    )
    instance.events.create(
        tenant=a.tenant, to_status="running", reason="alpha-event", created_at=instance.created_at
    )
    return Made({"pk": instance.pk}, "alpha-instance-name")


def _make_ledger_entries(a: Account) -> Made:
    ledger.post(
        a.tenant,
        LedgerEntry.Kind.ADMIN_GRANT,
        4_321_987,
        idempotency_key="alpha-grant",
        reference="alpha-usage-instance",
        description="alpha-ledger-entry",
    )
    ledger.post(
        a.tenant,
        LedgerEntry.Kind.USAGE_GPU,
        -1_000,
        idempotency_key="alpha-usage",
        reference="alpha-usage-instance",
    )
    return Made({}, "alpha-usage-instance")


def _make_balance(a: Account) -> Made:
    _make_ledger_entries(a)
    return Made({}, str(ledger.balance_micros(a.tenant)))


def _make_budget(a: Account) -> Made:
    response = a.client.patch(
        "/api/billing/budget", {"monthly_limit_usd": "4321.00"}, format="json"
    )
    assert response.status_code == 200, response.content
    return Made({}, "4321.00")


def _make_subscription(a: Account) -> Made:
    plan = Plan.objects.create(code="alpha", name="alpha-plan-name")
    Subscription.objects.filter(tenant=a.tenant).update(plan=plan)
    return Made({}, "alpha-plan-name")


def _make_invoice(a: Account) -> Made:
    Invoice.objects.create(
        tenant=a.tenant,
        stripe_invoice_id="in_alpha",
        number="ALPHA-INVOICE-0001",
        status=Invoice.Status.PAID,
        currency="USD",
        amount_due_minor=7900,
        amount_paid_minor=7900,
        issued_at=a.tenant.created_at,
    )
    return Made({}, "ALPHA-INVOICE-0001")


def _make_stripe_customer(a: Account) -> Made:
    Subscription.objects.filter(tenant=a.tenant).update(stripe_customer_id="cus_alpha_customer")
    return Made({}, "cus_alpha_customer")


def _make_webhook(a: Account) -> Made:
    endpoint = WebhookEndpoint.objects.create(
        tenant=a.tenant,
        url="https://alpha-hooks.example.com/in",
        description="alpha-webhook-description",
        events=["instance.running"],
    )
    return Made({"pk": endpoint.pk}, "alpha-webhook-description")


def _make_webhook_delivery(a: Account) -> Made:
    _make_webhook(a)
    (delivery,) = emit(a.tenant, "instance.running", {"marker": "alpha-delivery-data"})
    return Made({"pk": delivery.pk}, "alpha-delivery-data")


def _make_webhook_with_a_delivery(a: Account) -> Made:
    made = _make_webhook_delivery(a)
    endpoint_id = WebhookDelivery.objects.get(pk=made.kwargs["pk"]).endpoint_id
    return Made({"pk": endpoint_id}, made.marker)


def _make_price_alert(a: Account) -> Made:
    response = a.client.post(
        "/api/spot/alerts",
        {"gpu": "RTX 4090", "direction": "below", "price_usd": "432.1987"},
        format="json",
    )
    assert response.status_code == 201, response.content
    return Made({"pk": response.json()["id"]}, "432.1987")


def _make_snapshot(a: Account) -> Made:
    instance = InstanceFactory(tenant=a.tenant, status=Instance.Status.RUNNING)
    snapshot = Snapshot.objects.create(
        tenant=a.tenant,
        instance=instance,
        name="alpha-snapshot-name",
        source_gpu="RTX 4090",
        status=Snapshot.Status.COMPLETED,
        engine_snapshot_id="alpha-engine-id",
    )
    return Made({"pk": snapshot.pk}, "alpha-snapshot-name")


def _make_ticket(a: Account) -> Made:
    response = a.client.post(
        "/api/support/tickets",
        {"subject": "alpha-ticket-subject", "body": "alpha-ticket-body"},
        format="json",
    )
    assert response.status_code == 201, response.content
    return Made({"pk": response.json()["id"]}, "alpha-ticket-subject")


def _market_data(a: Account) -> Made:
    """Spot analytics are the same for every tenant; B must still never see A's things."""
    a.client.post("/api/tokens", {"name": "alpha-market-watcher"}, format="json")
    return Made({}, "alpha-market-watcher")


def _market_data_of_a_gpu(a: Account) -> Made:
    return Made({"gpu_name": "RTX 4090"}, _market_data(a).marker)


ROUTES: dict[str, Case] = {
    "health": Case("public"),
    "health-live": Case("public"),  # no customer data: the process answers
    "health-ready": Case("public"),  # no customer data: database and broker reachable
    "auth-signup": Case("public"),
    "auth-login": Case("public"),
    "schema": Case("public"),
    "docs": Case("public"),
    "auth-logout": Case("singleton", _make_profile),
    "me": Case("singleton", _make_profile),
    "standby-settings": Case(
        "singleton",
        _make_settings,
        TenantSettings,
        body={"auto_hibernate": False, "idle_threshold_percent": 50, "idle_minutes": 60},
    ),
    "token-list": Case("list", _make_token, ApiToken, body={"name": "beta"}),
    "token-detail": Case("detail", _make_token, ApiToken, body={"name": "beta"}),
    "ssh-key-list": Case("list", _make_ssh_key, SshKey, body={"name": "b", "public_key": ""}),
    "ssh-key-detail": Case("detail", _make_ssh_key, SshKey, body={"name": "beta"}),
    "member-list": Case("list", _make_member, Membership, body={"email": "nobody@example.com"}),
    "member-detail": Case("detail", _make_member, Membership, body={"role": "owner"}),
    "audit-log-list": Case("list", _make_audit_entries, AuditLog),
    "instance-list": Case("list", _make_instance, Instance, body={"gpu": ""}),
    "instance-detail": Case("detail", _make_instance, Instance),
    "instance-hibernate": Case("detail", _make_instance, Instance),
    "instance-wake": Case("detail", _make_instance, Instance),
    "instance-events": Case("detail", _make_instance, Instance),
    "instance-failovers": Case("detail", _make_instance, Instance),
    "instance-simulate-interruption": Case("detail", _make_instance, Instance),
    "billing-balance": Case("singleton", _make_balance, LedgerEntry),
    "billing-usage": Case("singleton", _make_ledger_entries, LedgerEntry),
    "billing-plans": Case("public"),
    # B's own top-up; the body is out of range so no Stripe call is made.
    "billing-checkout": Case(
        "singleton", _make_ledger_entries, LedgerEntry, body={"amount_usd": 1}
    ),
    "stripe-webhook": Case("public"),
    "billing-budget": Case(
        "singleton", _make_budget, Budget, body={"monthly_limit_usd": "5", "low_balance_usd": "1"}
    ),
    # B buys nothing (a plan that does not exist: 400) and has no paid plan to cancel (409).
    "billing-subscription": Case(
        "singleton", _make_subscription, Subscription, body={"plan": "enterprise"}
    ),
    # B has no Stripe customer of its own: 409, and never A's portal.
    "billing-portal": Case("singleton", _make_stripe_customer, Subscription),
    "invoice-list": Case("list", _make_invoice, Invoice),
    "ledger-list": Case("list", _make_ledger_entries, LedgerEntry),
    "ledger-export": Case("list", _make_ledger_entries, LedgerEntry),
    "spot-alert-list": Case(
        "list", _make_price_alert, PriceAlert, body={"gpu": "A100", "direction": "above"}
    ),
    "spot-alert-detail": Case(
        "detail", _make_price_alert, PriceAlert, body={"price_usd": "0.01", "is_active": False}
    ),
    "snapshot-list": Case("list", _make_snapshot, Snapshot, body={"instance_id": "i0"}),
    "snapshot-detail": Case("detail", _make_snapshot, Snapshot),
    "snapshot-restore": Case("detail", _make_snapshot, Snapshot, body={"gpu": "A100"}),
    "advisor": Case("shared", _market_data),
    "spot-monitor": Case("shared", _market_data),
    "spot-llm-gpus": Case("shared", _market_data),
    "spot-fleet-strategy": Case("shared", _market_data),
    "spot-prediction": Case("shared", _market_data_of_a_gpu),
    "spot-availability": Case("shared", _market_data),
    "spot-training-cost": Case("shared", _market_data),
    "spot-savings": Case("shared", _market_data),
    "spot-reliability": Case("shared", _market_data),
    "spot-interruption-rates": Case("shared", _market_data),
    "spot-safe-windows": Case("shared", _market_data_of_a_gpu),
    # Agents authenticate with their instance's token; a customer token is refused (401).
    "agent-heartbeat": Case(
        "singleton", _make_instance, Instance, body={"gpu_utilization_percent": 1}
    ),
    "agent-storage-token": Case("singleton", _make_instance, Instance),
    "webhook-list": Case(
        "list",
        _make_webhook,
        WebhookEndpoint,
        body={"url": "https://93.184.216.34/beta", "events": ["instance.running"]},
    ),
    "webhook-detail": Case(
        "detail", _make_webhook, WebhookEndpoint, body={"description": "beta", "is_active": False}
    ),
    "webhook-rotate-secret": Case("detail", _make_webhook, WebhookEndpoint),
    "webhook-ping": Case("detail", _make_webhook_delivery, WebhookDelivery),
    "webhook-deliveries": Case("detail", _make_webhook_with_a_delivery, WebhookDelivery),
    "webhook-delivery-detail": Case("detail", _make_webhook_delivery, WebhookDelivery),
    "webhook-delivery-redeliver": Case("detail", _make_webhook_delivery, WebhookDelivery),
    "support-ticket-list": Case(
        "list", _make_ticket, Ticket, body={"subject": "beta", "body": "beta"}
    ),
    "support-ticket-detail": Case("detail", _make_ticket, Ticket),
    "support-ticket-messages": Case("detail", _make_ticket, Ticket, body={"body": "beta"}),
    "support-ticket-close": Case("detail", _make_ticket, Ticket),
}


@dataclass(frozen=True)
class Route:
    name: str
    path: str
    methods: tuple[str, ...]


def _methods_of(callback) -> tuple[str, ...]:
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    allowed = set(getattr(view_class, "http_method_names", ()))
    if hasattr(callback, "actions"):  # a DRF viewset route: {"get": "list", ...}
        offered = set(callback.actions)
    else:
        offered = {method for method in allowed if hasattr(view_class, method)}
    return tuple(sorted((offered & allowed) - {"head", "options"}))


def _walk(patterns, prefix: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern


def api_routes() -> list[Route]:
    """Every route under /api/, from Django's own resolver."""
    routes = []
    for path, pattern in _walk(get_resolver().url_patterns):
        if path.lstrip("^").startswith("api/"):
            routes.append(
                Route(pattern.name or f"<unnamed {path}>", path, _methods_of(pattern.callback))
            )
    return routes


def test_every_api_route_is_covered():
    discovered = {route.name for route in api_routes()}

    missing = discovered - ROUTES.keys()
    stale = ROUTES.keys() - discovered

    assert not missing, f"add an isolation case to ROUTES for: {sorted(missing)}"
    assert not stale, f"ROUTES names routes that no longer exist: {sorted(stale)}"


def _rows(case: Case, a: Account) -> list[dict]:
    if case.model is None:
        return []
    return list(case.model.objects.for_tenant(a.tenant).order_by("pk").values())


def _call(b: Account, method: str, url: str, body: dict):
    if method in ("get", "delete"):
        return getattr(b.client, method)(url)
    return getattr(b.client, method)(url, body, format="json")


@pytest.mark.django_db
@pytest.mark.parametrize("route", api_routes(), ids=lambda route: route.name)
def test_tenant_b_cannot_reach_tenant_a_through(route: Route, two_tenants):
    a, b = two_tenants
    case = ROUTES.get(route.name)
    assert case is not None, f"route {route.path} has no isolation case in ROUTES"
    if case.kind == "public":
        return
    made = case.make(a)
    url = reverse(route.name, kwargs=made.kwargs if case.kind in ("detail", "shared") else {})
    before = _rows(case, a)

    responses = {method: _call(b, method, url, case.body) for method in route.methods}

    for method, response in responses.items():
        assert response.status_code < 500, f"{method.upper()} {url}: {response.status_code}"
        assert made.marker not in response.content.decode(), f"{method.upper()} {url} leaks A"
        if case.kind == "detail":
            assert response.status_code == 404, f"{method.upper()} {url} must be 404"
            assert response.json()["code"] == "not_found"
    assert _rows(case, a) == before, f"tenant B changed tenant A's rows through {url}"
