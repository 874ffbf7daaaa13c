"""The one Stripe client of billing (the real `stripe` library; STRIPE_API_BASE picks Stripe or
the local fake), and Stripe's errors turned into ours."""

from collections.abc import Callable
from typing import TypeVar

import stripe
from django.conf import settings

from billing.exceptions import PaymentProviderError

T = TypeVar("T")


def stripe_client() -> stripe.StripeClient:
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses={"api": settings.STRIPE_API_BASE},
        max_network_retries=2,
    )


def call_stripe(what: str, request: Callable[[stripe.StripeClient], T]) -> T:
    """Run one Stripe request; a refusal or an outage is a PaymentProviderError (502)."""
    try:
        return request(stripe_client())
    except stripe.StripeError as error:
        raise PaymentProviderError(
            f"Stripe refused to {what}: {error.user_message or error}"
        ) from error
