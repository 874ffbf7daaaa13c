"""The `Dumont-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "t.body")>`.

The same scheme as Stripe's: the timestamp is signed with the body, so a captured request cannot
be replayed later than the receiver's tolerance. Django-free, so a receiver can copy this file.
"""

import hashlib
import hmac
import time

SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def sign(secret: str, body: bytes | str, timestamp: int) -> str:
    """The hex HMAC-SHA256 of f"{timestamp}.{body}" with the endpoint's secret."""
    message = f"{timestamp}.".encode() + _as_bytes(body)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes | str, timestamp: int) -> str:
    """The value of the Dumont-Signature header for one request."""
    return f"t={timestamp},{SCHEME}={sign(secret, body, timestamp)}"


def parse_header(header: str) -> tuple[int | None, list[str]]:
    """(timestamp, v1 signatures) of a header; (None, []) when it has none."""
    timestamp = None
    signatures = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == SCHEME and value:
            signatures.append(value)
    return timestamp, signatures


def verify(
    secret: str,
    body: bytes | str,
    header: str,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """True when `header` signs exactly `body` with `secret` within `tolerance_seconds` of now."""
    timestamp, signatures = parse_header(header or "")
    if timestamp is None or not signatures:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    expected = sign(secret, body, timestamp)
    # compare_digest takes the same time wherever the strings differ.
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)
