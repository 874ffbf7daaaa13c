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
