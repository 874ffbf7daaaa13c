"""The API's general rate limits: per client address and per token (README, "Limits").

The address limit runs as middleware, before authentication, so guessing tokens or hammering a
404 is limited too; the token limit is a DRF throttle, since only an authenticated request has
a token. Both count in the shared cache (Redis), so every web process sees the same counters.
A 429 carries Retry-After and the API's error body {"code": "throttled", "detail", ...}.
"""

import logging
import math

from django.http import JsonResponse
from django.utils.translation import gettext
from redis.exceptions import RedisError
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger(__name__)


class _ConfiguredRateThrottle(SimpleRateThrottle):
    """Reads its rate when it runs (settings can change in tests); no rate set: no limit."""

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view) -> bool:
        """With the cache (Redis) unreachable the request goes through: the limits protect the
        service, and refusing every request while Redis restarts would be the outage itself.
        /api/health/ready reports the broken broker meanwhile."""
        try:
            return super().allow_request(request, view)
        except (RedisError, OSError) as error:
            logger.warning("rate limit %s not applied, no cache: %s", self.scope, error)
            return True


class AddressRateThrottle(_ConfiguredRateThrottle):
    """Every /api/ request from one client address (honouring NUM_PROXIES)."""

    scope = "address"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class TokenRateThrottle(_ConfiguredRateThrottle):
    """Every request made with one API token (or one portal session's user)."""

    scope = "token"

    def get_cache_key(self, request, view):
        context = request.auth
        token = getattr(context, "token", None)
        if token is not None:
            ident = f"token-{token.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            return None  # anonymous: the address limit applies
        return self.cache_format % {"scope": self.scope, "ident": ident}


def throttled_response(wait_seconds: float | None) -> JsonResponse:
    """The 429 the DRF handler would give, for answers made outside DRF."""
    body = {"code": "throttled", "detail": gettext("Request was throttled.")}
    if wait_seconds is not None:
        body["retry_after_seconds"] = math.ceil(wait_seconds)
    response = JsonResponse(body, status=429)
    if wait_seconds is not None:
        response["Retry-After"] = body["retry_after_seconds"]
    return response


class ApiAddressRateLimitMiddleware:
    """Refuse /api/ requests over the per-address rate with a 429, before anything else runs
    (the health probes excepted: an orchestrator polls them from one address)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/") and not request.path.startswith("/api/health"):
            throttle = AddressRateThrottle()
            if throttle.rate is not None and not throttle.allow_request(request, None):
                return throttled_response(throttle.wait())
        return self.get_response(request)
