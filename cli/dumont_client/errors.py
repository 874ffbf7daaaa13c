"""Exceptions for API answers: each carries the API's stable `code`, its `detail` and the status.

The server answers every error as `{"code": "...", "detail": "..."}` (validation errors add
`errors`, `no_capacity` adds `alternatives`, `invalid_transition` adds `status`).
"""

from __future__ import annotations

from typing import Any


class DumontError(Exception):
    """Any failure of a Dumont API call: `code`, `detail`, `status_code` (None without answer)."""

    default_code = "error"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.default_code
        self.status_code = status_code
        self.body: dict[str, Any] = body or {}

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


class ConfigurationError(DumontError):
    """No API key (or no URL) in the arguments, the environment or the config file."""

    default_code = "not_logged_in"


class APIConnectionError(DumontError):
    """The API could not be reached (refused, DNS, timeout), after the retries."""

    default_code = "connection_error"


class AuthenticationError(DumontError):
    default_code = "invalid_token"


class PermissionDenied(DumontError):
    default_code = "permission_denied"


class NotFound(DumontError):
    default_code = "not_found"


class ValidationError(DumontError):
    """A 400: `errors` maps each field to its `[{"code", "message"}]`."""

    default_code = "invalid"

    @property
    def errors(self) -> dict[str, list[dict[str, str]]]:
        return self.body.get("errors") or {}


class InsufficientCredits(DumontError):
    default_code = "insufficient_credits"


class Conflict(DumontError):
    default_code = "conflict"


class InvalidTransition(Conflict):
    """The instance's state machine does not allow the move; `status` is where it is now."""

    default_code = "invalid_transition"

    @property
    def status(self) -> str | None:
        return self.body.get("status")


class NoCapacity(Conflict):
    """Nothing on the market under the price; `alternatives` are the cheapest other choices."""

    default_code = "no_capacity"

    @property
    def alternatives(self) -> list[dict[str, Any]]:
        return list(self.body.get("alternatives") or [])


class RateLimited(DumontError):
    default_code = "throttled"

    @property
    def retry_after_seconds(self) -> float | None:
        value = self.body.get("retry_after_seconds")
        return float(value) if value is not None else None


class ServerError(DumontError):
    default_code = "server_error"


class WaitTimeout(DumontError):
    """`wait_until` gave up before the resource reached the wanted status."""

    default_code = "timeout"


class UnexpectedStatus(DumontError):
    """`wait_until` saw the resource end in a status it can no longer leave (error, deleted)."""

    default_code = "unexpected_status"


_BY_CODE: dict[str, type[DumontError]] = {
    "insufficient_credits": InsufficientCredits,
    "no_capacity": NoCapacity,
    "invalid_transition": InvalidTransition,
    "throttled": RateLimited,
}

_BY_STATUS: dict[int, type[DumontError]] = {
    400: ValidationError,
    401: AuthenticationError,
    402: InsufficientCredits,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    429: RateLimited,
}


def error_for(status_code: int, body: Any, reason: str = "") -> DumontError:
    """The exception for one error answer; a body that is not our JSON still gives one line."""
    if not isinstance(body, dict):
        body = {}
    code = body.get("code")
    detail = body.get("detail") or reason or f"HTTP {status_code}"
    if not isinstance(detail, str):
        detail = str(detail)
    error_class = _BY_CODE.get(code or "") or _BY_STATUS.get(status_code)
    if error_class is None:
        error_class = ServerError if status_code >= 500 else DumontError
    if not code:
        # A proxy's or framework's page, not our JSON: the status is the most precise code.
        code = error_class.default_code if error_class is not DumontError else f"http_{status_code}"
    return error_class(
        detail,
        code=code,
        status_code=status_code,
        body=body,
    )
