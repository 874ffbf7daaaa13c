"""Paid plans through Stripe Billing: Checkout in subscription mode, the webhook's view of the
subscription and its invoices, cancelling at period end, and the customer portal.

Order of events: Stripe does not promise any, so every `customer.subscription.*` event (and a
completed subscription Checkout) re-reads the subscription from Stripe and applies that, the
current state, whatever the event carried. The tenant is found by the `tenant_id` we put in the
subscription's metadata, else by its Stripe customer. A paid invoice of a plan with included
credit adds `subscription_credit` once (`invoice:<id>`).
"""

from datetime import UTC, datetime

from django.conf import settings
from django.db import IntegrityError, transaction

from accounts.mail import mail_owners
from accounts.models import Tenant, User
from billing import cards, ledger
from billing.exceptions import AlreadySubscribed, NoPaidSubscription, NoStripeCustomer, UnknownPlan
from billing.models import CheckoutSession, Invoice, LedgerEntry, Plan, Subscription
from billing.money import usd_text
from billing.plans import seed_plan
from billing.stripe_api import call_stripe

SUBSCRIBABLE_PLANS = ("starter", "pro")
STATUS_OF_STRIPE = {
    "active": Subscription.Status.ACTIVE,
    "trialing": Subscription.Status.ACTIVE,  # a Stripe-side trial: we do not give those
    "past_due": Subscription.Status.PAST_DUE,
    "unpaid": Subscription.Status.PAST_DUE,
    "paused": Subscription.Status.PAST_DUE,
    "canceled": Subscription.Status.CANCELED,
    "incomplete_expired": Subscription.Status.CANCELED,
    "incomplete": Subscription.Status.INCOMPLETE,
}
# An invoice never goes back: a late `invoice.payment_failed` does not reopen a paid one.
INVOICE_RANK = {"draft": 0, "open": 1, "uncollectible": 2, "paid": 3, "void": 3}


def _at(timestamp: int | None) -> datetime | None:
    return datetime.fromtimestamp(timestamp, tz=UTC) if timestamp else None


def _locked_subscription(tenant_id: int, plan: Plan) -> Subscription:
    """The tenant's subscription row, locked; a tenant that never had a trial gets one."""
    row = Subscription.objects.select_for_update().filter(tenant_id=tenant_id).first()
    if row is not None:
        return row
    try:
        with transaction.atomic():
            Subscription.objects.create(
                tenant_id=tenant_id, plan=plan, status=Subscription.Status.INCOMPLETE
            )
    except IntegrityError:
        pass  # a concurrent event created it
    return Subscription.objects.select_for_update().get(tenant_id=tenant_id)


def subscribable_plan(code: str) -> Plan:
    plan = seed_plan(code) if code in SUBSCRIBABLE_PLANS else None
    if plan is None or not plan.is_public or plan.price_minor <= 0:
        raise UnknownPlan(f"Plan {code!r} cannot be bought online: choose starter or pro.")
    return plan


def ensure_customer(tenant: Tenant, email: str, plan: Plan) -> str:
    """The tenant's Stripe customer id, created once (and then reused for every payment)."""
    with transaction.atomic():
        row = _locked_subscription(tenant.pk, plan)
        if row.stripe_customer_id:
            return row.stripe_customer_id
        customer = call_stripe(
            "create the customer",
            lambda client: client.v1.customers.create(
                params={
                    "email": email,
                    "name": tenant.name,
                    "metadata": {"tenant_id": str(tenant.pk)},
                },
                options={"idempotency_key": f"customer-of-tenant-{tenant.pk}"},
            ),
        )
        row.stripe_customer_id = customer.id
        row.save(update_fields=["stripe_customer_id", "updated_at"])
        return customer.id


def start_subscription_checkout(
    tenant: Tenant, plan_code: str, *, buyer: User, success_url: str, cancel_url: str
) -> CheckoutSession:
    """Open a Stripe Checkout Session (mode subscription, card) for a plan; pay at its `url`."""
    plan = subscribable_plan(plan_code)
    current = Subscription.objects.for_tenant(tenant).first()
    if current is not None and current.is_paid:
        raise AlreadySubscribed(
            f"This organisation already pays for {current.plan.name}; change or cancel it in "
            "the billing portal (POST /api/billing/portal)."
        )
    customer_id = ensure_customer(tenant, buyer.email, plan)
    metadata = {"tenant_id": str(tenant.pk), "plan": plan.code}
    if plan.stripe_price_id:
        line_item = {"quantity": 1, "price": plan.stripe_price_id}
    else:
        line_item = {
            "quantity": 1,
            "price_data": {
                "currency": plan.currency.lower(),
                "unit_amount": plan.price_minor,
                "recurring": {"interval": "month"},
                "product_data": {"name": f"Dumont Cloud {plan.name}"},
            },
        }
    params = {
        "mode": "subscription",
        "customer": customer_id,
        "payment_method_types": ["card"],
        "client_reference_id": str(tenant.pk),
        "success_url": success_url,
        "cancel_url": cancel_url,
        "line_items": [line_item],
        "metadata": metadata,
        "subscription_data": {"metadata": metadata},
    }
    session = call_stripe(
        "open the checkout", lambda client: client.v1.checkout.sessions.create(params=params)
    )
    return CheckoutSession.objects.create(
        tenant=tenant,
        stripe_session_id=session.id,
        mode=CheckoutSession.Mode.SUBSCRIPTION,
        plan=plan,
        method=CheckoutSession.Method.CARD,
        credit_micros=0,
        currency=plan.currency,
        amount_minor=plan.price_minor,
        url=session.url,
    )


def cancel_at_period_end(tenant: Tenant) -> Subscription:
    """Stop renewing the tenant's paid plan; it stays active until its period ends."""
    row = Subscription.objects.for_tenant(tenant).select_related("plan").first()
    if row is None or not row.is_paid:
        raise NoPaidSubscription("This organisation has no paid plan to cancel.")
    call_stripe(
        "cancel the subscription",
        lambda client: client.v1.subscriptions.update(
            row.stripe_subscription_id, params={"cancel_at_period_end": True}
        ),
    )
    # The webhook confirms it; recording it now lets the answer say so at once.
    Subscription.objects.filter(pk=row.pk).update(cancel_at_period_end=True)
    row.cancel_at_period_end = True
    return row


def portal_url(tenant: Tenant, return_url: str) -> str:
    """A Stripe customer-portal link (cards, invoices, plan) for the tenant's customer."""
    row = Subscription.objects.for_tenant(tenant).first()
    if row is None or not row.stripe_customer_id:
        raise NoStripeCustomer("No payment has been started yet, so there is no portal to open.")
    session = call_stripe(
        "open the billing portal",
        lambda client: client.v1.billing_portal.sessions.create(
            params={"customer": row.stripe_customer_id, "return_url": return_url}
        ),
    )
    return session.url


# --- The webhook ----------------------------------------------------------------------------


def _tenant_of(metadata: dict | None, customer_id: str | None) -> int | None:
    tenant_id = (metadata or {}).get("tenant_id")
    if tenant_id and str(tenant_id).isdigit() and Tenant.objects.filter(pk=tenant_id).exists():
        return int(tenant_id)
    if customer_id:
        row = Subscription.objects.filter(stripe_customer_id=customer_id).first()
        if row is not None:
            return row.tenant_id
    return None


def _plan_of(remote: dict) -> Plan | None:
    items = (remote.get("items") or {}).get("data") or []
    price_id = ((items[0].get("price") or {}).get("id")) if items else None
    if price_id:
        plan = Plan.objects.filter(stripe_price_id=price_id).exclude(stripe_price_id="").first()
        if plan is not None:  # a plan change in the portal moves to the other plan's price
            return plan
    code = (remote.get("metadata") or {}).get("plan")
    return Plan.objects.filter(code=code).first() if code else None


def _period(remote: dict) -> tuple[datetime | None, datetime | None]:
    """The current period: on the subscription before API 2025-03-31, on its items since."""
    items = (remote.get("items") or {}).get("data") or [{}]
    start = remote.get("current_period_start") or items[0].get("current_period_start")
    end = remote.get("current_period_end") or items[0].get("current_period_end")
    return _at(start), _at(end)


def sync_subscription(stripe_subscription_id: str) -> str:
    """Apply the subscription as Stripe has it now (any event about it, in any order)."""
    remote = call_stripe(
        "read the subscription",
        lambda client: client.v1.subscriptions.retrieve(
            stripe_subscription_id, params={"expand": ["default_payment_method"]}
        ),
    ).to_dict()
    tenant_id = _tenant_of(remote.get("metadata"), remote.get("customer"))
    plan = _plan_of(remote)
    if tenant_id is None or plan is None:
        return "unknown subscription"
    status = STATUS_OF_STRIPE.get(remote.get("status"), Subscription.Status.INCOMPLETE)
    row = _locked_subscription(tenant_id, plan)
    is_other = row.stripe_subscription_id and row.stripe_subscription_id != remote["id"]
    if is_other and (status == Subscription.Status.CANCELED or row.is_paid):
        # A tenant's old subscription ending, or a second one while the first is live: the
        # row keeps following the live one.
        return "other subscription"
    period_start, period_end = _period(remote)
    row.plan = plan
    row.status = status
    row.stripe_subscription_id = remote["id"]
    row.stripe_customer_id = remote.get("customer") or row.stripe_customer_id
    row.current_period_start = period_start
    row.current_period_end = period_end
    row.cancel_at_period_end = bool(remote.get("cancel_at_period_end"))
    row.save()
    cards.check_card(tenant_id, cards.card_fingerprint(remote.get("default_payment_method")))
    return f"subscription {status}"


def checkout_completed(stripe_session: dict) -> str:
    """A subscription Checkout finished: mark our session paid and sync its subscription."""
    session = (
        CheckoutSession.objects.select_for_update()
        .filter(stripe_session_id=stripe_session["id"])
        .first()
    )
    if session is not None and stripe_session.get("payment_status") == "paid":
        session.status = CheckoutSession.Status.PAID
        session.completed_at = session.completed_at or datetime.now(tz=UTC)
        session.save(update_fields=["status", "completed_at"])
    if not stripe_session.get("subscription"):
        return "no subscription yet"
    return sync_subscription(stripe_session["subscription"])


def _subscription_of_invoice(invoice: dict) -> tuple[str, dict]:
    """(subscription id, its metadata): `parent.subscription_details` since API 2025-03-31."""
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    legacy = invoice.get("subscription_details") or {}
    subscription_id = details.get("subscription") or invoice.get("subscription") or ""
    if isinstance(subscription_id, dict):
        subscription_id = subscription_id.get("id", "")
    return subscription_id, details.get("metadata") or legacy.get("metadata") or {}


def record_invoice(event_type: str, invoice: dict) -> str:
    """Store the invoice; a paid one adds the plan's included credit, a failed one past_due."""
    subscription_id, metadata = _subscription_of_invoice(invoice)
    tenant_id = _tenant_of(metadata, invoice.get("customer"))
    if tenant_id is None:
        return "unknown customer"
    stored = _store_invoice(tenant_id, subscription_id, invoice)
    if event_type == "invoice.paid":
        return _credit_included(tenant_id, stored, metadata)
    if event_type == "invoice.payment_failed" and stored.status != Invoice.Status.PAID:
        return _payment_failed(tenant_id, stored)
    return "invoice recorded"


def _store_invoice(tenant_id: int, subscription_id: str, invoice: dict) -> Invoice:
    status = invoice.get("status") or Invoice.Status.OPEN
    fields = {
        "tenant_id": tenant_id,
        "stripe_subscription_id": subscription_id,
        "number": invoice.get("number") or "",
        "status": status,
        "currency": (invoice.get("currency") or "usd").upper(),
        "amount_due_minor": invoice.get("amount_due") or 0,
        "amount_paid_minor": invoice.get("amount_paid") or 0,
        "period_start": _at(invoice.get("period_start")),
        "period_end": _at(invoice.get("period_end")),
        "hosted_invoice_url": invoice.get("hosted_invoice_url") or "",
        "invoice_pdf_url": invoice.get("invoice_pdf") or "",
        "issued_at": _at(invoice.get("created")) or datetime.now(tz=UTC),
    }
    stored, created = Invoice.objects.select_for_update().get_or_create(
        stripe_invoice_id=invoice["id"], defaults=fields
    )
    if not created and INVOICE_RANK.get(status, 0) >= INVOICE_RANK.get(stored.status, 0):
        for name, value in fields.items():
            setattr(stored, name, value)
        stored.save()
    return stored


def _credit_included(tenant_id: int, invoice: Invoice, metadata: dict) -> str:
    row = Subscription.objects.filter(tenant_id=tenant_id).select_related("plan").first()
    plan = Plan.objects.filter(code=metadata.get("plan")).first() or (row and row.plan)
    if plan is None or plan.included_credit_micros <= 0 or invoice.amount_paid_minor <= 0:
        return "invoice paid"
    _, created = ledger.post(
        tenant_id,
        LedgerEntry.Kind.SUBSCRIPTION_CREDIT,
        plan.included_credit_micros,
        idempotency_key=f"invoice:{invoice.stripe_invoice_id}",
        reference=invoice.stripe_invoice_id,
        description=f"{plan.name}: {plan.included_gpu_hours} GPU-hours included "
        f"(${usd_text(plan.included_credit_micros)})",
        currency=invoice.currency,
        amount_minor=invoice.amount_paid_minor,
    )
    return "credited" if created else "already credited"


def _payment_failed(tenant_id: int, invoice: Invoice) -> str:
    row = Subscription.objects.select_for_update().filter(tenant_id=tenant_id).first()
    is_this_one = row is not None and row.stripe_subscription_id in (
        "",
        invoice.stripe_subscription_id,
    )
    if is_this_one and row.status in (Subscription.Status.ACTIVE, Subscription.Status.INCOMPLETE):
        row.status = Subscription.Status.PAST_DUE
        row.save(update_fields=["status", "updated_at"])
    due = invoice.amount_due_minor
    amount = f"{due // 100}.{due % 100:02d} {invoice.currency}"
    link = invoice.hosted_invoice_url or f"{settings.DUMONT_PUBLIC_URL.rstrip('/')}/billing"
    transaction.on_commit(
        lambda: mail_owners(
            tenant_id,
            "Dumont Cloud: your plan's payment failed",
            f"We could not charge {amount} for invoice {invoice.number or invoice.pk}. "
            f"Stripe will retry; update your card or pay here: {link}",
        )
    )
    return "payment failed"
