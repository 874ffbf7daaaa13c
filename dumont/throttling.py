"""The API's general rate limits, per client address and per token (docs/CONFIGURATION.md).

The address limit runs as middleware, before authentication, so guessing tokens or hammering a
404 is limited too; the token limit is a DRF throttle, since only an authenticated request has
a token. Both count in Redis (`limits`' moving window), so every web process sees the same
counters.
A 429 carries Retry-After and the API's error body {"code": "throttled", "detail", ...}.
"""

import functools
import logging
import math
import time

from django.conf import settings
from django.http import JsonResponse
from django.utils.translation import gettext
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

logger = logging.getLogger(__name__)
REDIS_TIMEOUT_SECONDS = 2  # a hung Redis costs a request this much, then the limit is skipped


@functools.cache
def _limiter(redis_url: str) -> MovingWindowRateLimiter:
    """One per process and Redis: `limits`' moving window, a Lua script per hit, so concurrent
    requests in any number of web processes are all counted (DRF's own throttles read and then
    write a pickled list of timestamps: parallel requests overwrite each other's counts)."""
    storage = RedisStorage(
        redis_url.replace("unix://", "redis+unix://", 1),
        key_prefix=f"{settings.CACHE_KEY_PREFIX}:limits",
        wrap_exceptions=True,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
    )
    return MovingWindowRateLimiter(storage)


@functools.cache
def _rate_item(rate: str) -> RateLimitItem:
    """A DRF rate ("10/min", "20/hour", ...) as a `limits` item over the same window."""
    count, seconds = SimpleRateThrottle.parse_rate(None, rate)
    return RateLimitItemPerSecond(count, seconds)


class _MovingWindowThrottle(BaseThrottle):
    """At most N requests per identity in any window of the rate's length, counted in Redis.

    The rate is read when the throttle runs (settings can change in tests); no rate set or no
    identity: no limit. With Redis unreachable the request goes through: the limits protect the
    service, and refusing every request while Redis restarts would be the outage itself;
    /api/health/ready reports the broken broker meanwhile."""

    scope = ""
    _wait: float | None = None

    def scope_of(self, view) -> str:
        return self.scope

    def identity(self, request, view) -> str | None:
        raise NotImplementedError

    def allow_request(self, request, view) -> bool:
        scope = self.scope_of(view)
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(scope) if scope else None
        identity = self.identity(request, view) if rate else None
        if identity is None:
            return True
        limiter, item = _limiter(settings.REDIS_URL), _rate_item(rate)
        try:
            if limiter.hit(item, scope, identity):
                return True
            reset_at = limiter.get_window_stats(item, scope, identity).reset_time
        except StorageError as error:
            logger.warning("rate limit %s not applied, no Redis: %s", scope, error)
            return True
        self._wait = max(reset_at - time.time(), 1.0)
        return False

    def wait(self) -> float | None:
        return self._wait


class AddressRateThrottle(_MovingWindowThrottle):
    """Every /api/ request from one client address (honouring NUM_PROXIES)."""

    scope = "address"

    def identity(self, request, view) -> str | None:
        return self.get_ident(request)


class TokenRateThrottle(_MovingWindowThrottle):
    """Every request made with one API token (or one portal session's user)."""

    scope = "token"

    def identity(self, request, view) -> str | None:
        token = getattr(request.auth, "token", None)
        if token is not None:
            return f"token-{token.pk}"
        if request.user and request.user.is_authenticated:
            return f"user-{request.user.pk}"
        return None  # anonymous: the address limit applies


class ScopedRateThrottle(_MovingWindowThrottle):
    """The view's own tighter rate (`throttle_scope`: login, signup, advisor), per signed-in
    user, else per client address."""

    def scope_of(self, view) -> str:
        return getattr(view, "throttle_scope", "")

    def identity(self, request, view) -> str | None:
        if request.user and request.user.is_authenticated:
            return f"user-{request.user.pk}"
        return self.get_ident(request)


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
            if not throttle.allow_request(request, None):
                return throttled_response(throttle.wait())
        return self.get_response(request)
