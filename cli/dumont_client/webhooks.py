"""Verify a webhook delivery: `Dumont-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`.

The signed message is `f"{t}.".encode() + raw_body` with the endpoint's secret as the key.
Verify the raw bytes as received, before parsing the JSON: re-serialising changes them.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Dumont-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


def _parsed(header: str) -> tuple[int | None, list[str]]:
    timestamp = None
    signatures = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == SCHEME and value:
            signatures.append(value.strip())
    return timestamp, signatures


def verify_signature(
    payload: bytes,
    header: str,
    secret: str,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    *,
    now: float | None = None,
) -> bool:
    """True when `header` signs exactly `payload` with `secret`, made within
    `tolerance_seconds` of now (an older one is a replay). Several `v1=` entries may be given
    (during a secret rotation); one matching is enough."""
    if isinstance(payload, str):
        payload = payload.encode()
    timestamp, signatures = _parsed(header or "")
    if timestamp is None or not signatures:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    message = f"{timestamp}.".encode() + payload
    expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    # compare_digest: the time taken does not tell an attacker where the strings differ.
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)
