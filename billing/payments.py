"""Credit top-ups through Stripe Checkout, and the Stripe webhook that credits them.

Card is charged in USD; PIX and boleto in BRL at USD_BRL_RATE, recorded on the session and on the
ledger entry. Crediting is idempotent on the Checkout Session (`checkout:<session id>`) and every
event id is stored once, so replays and out-of-order delivery credit exactly once. A boleto is
paid days after checkout completes: `checkout.session.completed` with payment_status `unpaid`
waits, then `checkout.session.async_payment_succeeded` credits or `..._failed` closes it.
"""

import math
from decimal import Decimal

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Tenant
from billing import cards, ledger, subscriptions
from billing.exceptions import InvalidAmount, PaymentProviderError
from billing.models import CheckoutSession, LedgerEntry, StripeEvent
from billing.money import MICROS_PER_USD, usd_text
from billing.stripe_api import stripe_client

CURRENCY_OF_METHOD = {
    CheckoutSession.Method.CARD: "usd",
    CheckoutSession.Method.PIX: "brl",
    CheckoutSession.Method.BOLETO: "brl",
}


def _price(credit_micros: int, method: str) -> tuple[str, int, Decimal | None]:
    """(currency, amount in minor units, FX rate) charged for `credit_micros` of credit."""
    if CURRENCY_OF_METHOD[method] == "usd":
        return "usd", math.ceil(credit_micros / 10_000), None
    rate = Decimal(settings.USD_BRL_RATE)
    centavos = math.ceil(Decimal(credit_micros) * rate / 10_000)
    return "brl", centavos, rate


def start_checkout(
    tenant: Tenant, credit_micros: int, method: str, *, success_url: str, cancel_url: str
) -> CheckoutSession:
    """Open a Stripe Checkout Session for a top-up; the customer pays at its `url`."""
    low, high = settings.TOP_UP_MIN_USD, settings.TOP_UP_MAX_USD
    if not low * MICROS_PER_USD <= credit_micros <= high * MICROS_PER_USD:
        raise InvalidAmount(f"Top-ups are between ${low} and ${high}.")
    currency, amount_minor, rate = _price(credit_micros, method)
    params = {
        "mode": "payment",
        "payment_method_types": [method],
        "client_reference_id": str(tenant.pk),
        "success_url": success_url,
        "cancel_url": cancel_url,
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": currency,
                    "unit_amount": amount_minor,
                    "product_data": {"name": f"Dumont Cloud credit ${usd_text(credit_micros)}"},
                },
            }
        ],
        "metadata": {"tenant_id": str(tenant.pk), "credit_micros": str(credit_micros)},
    }
    try:
        session = stripe_client().v1.checkout.sessions.create(params=params)
    except stripe.StripeError as error:
        message = f"Stripe refused the checkout: {error.user_message or error}"
        raise PaymentProviderError(message) from error
    return CheckoutSession.objects.create(
        tenant=tenant,
        stripe_session_id=session.id,
        method=method,
        credit_micros=credit_micros,
        currency=currency.upper(),
        amount_minor=amount_minor,
        fx_rate=rate,
        url=session.url,
    )


class InvalidSignature(Exception):
    """The webhook was not signed by Stripe with our endpoint secret."""


def handle_webhook(payload: bytes, signature_header: str) -> str:
    """Verify, record once, and apply a Stripe event; returns what happened."""
    try:
        event = stripe.Webhook.construct_event(
            payload, signature_header, settings.STRIPE_WEBHOOK_SECRET
        )
    except (ValueError, stripe.SignatureVerificationError) as error:
        raise InvalidSignature(str(error)) from error
    try:
        with transaction.atomic():
            StripeEvent.objects.create(event_id=event.id, type=event.type)
            return _apply(event)
    except IntegrityError:
        return "duplicate"


def _apply(event) -> str:
    obj = event.data.object.to_dict()
    if event.type.startswith("customer.subscription."):
        return subscriptions.sync_subscription(obj["id"])
    if event.type.startswith("invoice."):
        return subscriptions.record_invoice(event.type, obj)
    if event.type.startswith("checkout.session.") and obj.get("mode") == "subscription":
        return subscriptions.checkout_completed(obj) if event.type.endswith("completed") else "ok"
    handlers = {
        "checkout.session.completed": _completed,
        "checkout.session.async_payment_succeeded": _paid,
        "checkout.session.async_payment_failed": _failed,
    }
    handler = handlers.get(event.type)
    if handler is None:
        return "ignored"
    stripe_session = obj
    session = (
        CheckoutSession.objects.select_for_update()
        .filter(stripe_session_id=stripe_session["id"])
        .first()
    )
    if session is None:
        return "unknown session"
    return handler(session, stripe_session)


def _completed(session: CheckoutSession, stripe_session: dict) -> str:
    if stripe_session.get("payment_status") in ("paid", "no_payment_required"):
        return _paid(session, stripe_session)
    if session.status == CheckoutSession.Status.OPEN:
        session.status = CheckoutSession.Status.AWAITING_PAYMENT
        session.save(update_fields=["status"])
    return "awaiting payment"


def _paid(session: CheckoutSession, stripe_session: dict) -> str:
    _, created = ledger.post(
        session.tenant_id,
        LedgerEntry.Kind.PURCHASE,
        session.credit_micros,
        idempotency_key=f"checkout:{session.stripe_session_id}",
        reference=session.stripe_session_id,
        description=f"top-up by {session.method}",
        currency=session.currency,
        amount_minor=session.amount_minor,
        fx_rate=session.fx_rate,
    )
    session.status = CheckoutSession.Status.PAID
    session.completed_at = session.completed_at or timezone.now()
    session.save(update_fields=["status", "completed_at"])
    if stripe_session.get("payment_intent") and session.method == CheckoutSession.Method.CARD:
        cards.check_card_of_payment_intent(session.tenant_id, stripe_session["payment_intent"])
    return "credited" if created else "already credited"


def _failed(session: CheckoutSession, stripe_session: dict) -> str:
    if session.status != CheckoutSession.Status.PAID:
        session.status = CheckoutSession.Status.FAILED
        session.save(update_fields=["status"])
    return "payment failed"
