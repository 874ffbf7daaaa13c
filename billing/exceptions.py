"""Domain errors of billing; dumont.errors turns them into JSON with their `code`."""

from dumont.exceptions import DumontError


class InsufficientCredits(DumontError):
    code = "insufficient_credits"
    status_code = 402
    default_detail = "Not enough credit for one hour of this machine; add credits or a plan."


class InvalidAmount(DumontError):
    code = "invalid_amount"


class PaymentProviderError(DumontError):
    code = "payment_provider_error"
    status_code = 502
    default_detail = "The payment provider did not accept the request; try again."


class UnknownPlan(DumontError):
    code = "unknown_plan"


class AlreadySubscribed(DumontError):
    code = "already_subscribed"
    status_code = 409


class NoPaidSubscription(DumontError):
    code = "no_paid_subscription"
    status_code = 409


class NoStripeCustomer(DumontError):
    code = "no_stripe_customer"
    status_code = 409
    default_detail = "No payment has been started yet, so there is no billing portal to open."
