"""Domain errors of webhooks; dumont.errors turns them into JSON with their `code`."""

from dumont.exceptions import DumontError


class InvalidUrl(DumontError):
    code = "invalid_url"
    default_detail = "Enter an http:// or https:// URL with a host name."


class UrlNotAllowed(DumontError):
    code = "url_not_allowed"
    default_detail = "This URL points to an address webhooks may not reach."


class UnknownEvent(DumontError):
    code = "unknown_event"
    default_detail = "This event is not in the webhook catalog."


class TooManyEndpoints(DumontError):
    code = "too_many_endpoints"
    default_detail = "This organisation already has the maximum number of webhook endpoints."


class EndpointInactive(DumontError):
    code = "endpoint_inactive"
    status_code = 409
    default_detail = "This endpoint is disabled; enable it first."
