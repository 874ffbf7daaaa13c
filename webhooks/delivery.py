"""One delivery attempt: claim the outbox row, POST the signed event, record what happened.

Retry schedule after a failed attempt (non-2xx, connection error, timeout, refused address):
30 s, 2 min, 10 min, 30 min, 1 h, 3 h, 6 h, 12 h — nine attempts over about 23 hours, then the
delivery is `failed`. The sweep task (webhooks.tasks) sends retries when they fall due.
"""

import ipaddress
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from dumont.tls import tls_context
from webhooks import signing, ssrf
from webhooks.exceptions import InvalidUrl, UrlNotAllowed
from webhooks.models import WebhookDelivery

logger = logging.getLogger(__name__)

BACKOFF_SECONDS: tuple[int, ...] = (30, 120, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600)
MAX_ATTEMPTS = len(BACKOFF_SECONDS) + 1
# How long a claimed attempt keeps the row. Longer than any attempt can take (connect and read
# timeouts plus reading a short excerpt), so only a worker that died mid-attempt loses it; the
# sweep then picks the row up again.
CLAIM_LEASE = timedelta(minutes=2)
RESPONSE_EXCERPT_BYTES = 1024
USER_AGENT = "Dumont-Webhooks/1"


@dataclass(frozen=True)
class Outcome:
    """What one attempt got back: a status code, or the error that prevented one."""

    status_code: int | None = None
    error: str = ""
    body_excerpt: str = ""

    @property
    def is_success(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def request_body(delivery: WebhookDelivery) -> bytes:
    """The exact bytes we POST and sign."""
    return json.dumps(delivery.payload, separators=(",", ":")).encode()


def claim(tenant_id: int, delivery_id: int, now: datetime) -> WebhookDelivery | None:
    """Take a due delivery for one attempt; None when it is not due or another worker has it."""
    # One conditional UPDATE: of two workers handed the same id (a duplicated task, or the
    # sweep re-queueing it), only one sees a row count of 1; moving next_attempt_at to the end
    # of the lease keeps the row out of the sweep while the attempt runs.
    claimed = (
        WebhookDelivery.objects.for_tenant(tenant_id)
        .filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
        .update(
            attempt_count=F("attempt_count") + 1,
            last_attempt_at=now,
            next_attempt_at=now + CLAIM_LEASE,
        )
    )
    if claimed != 1:
        return None
    return WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)


def _read_excerpt(response: httpx.Response, deadline: float) -> str:
    received = b""
    for chunk in response.iter_bytes():
        received += chunk
        if len(received) >= RESPONSE_EXCERPT_BYTES or time.monotonic() > deadline:
            break
    # Postgres text cannot hold NUL; the excerpt is for people, so replace what is not UTF-8.
    excerpt = received[:RESPONSE_EXCERPT_BYTES].decode("utf-8", errors="replace")
    return excerpt.replace("\x00", "\ufffd")


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def send(delivery: WebhookDelivery) -> Outcome:
    """POST the delivery to its endpoint once; network and address errors become an Outcome."""
    endpoint = delivery.endpoint
    try:
        # Checked again at every attempt: the URL's DNS answer may have changed since it was saved.
        target = ssrf.resolve_target(endpoint.url)
    except (InvalidUrl, UrlNotAllowed) as error:
        return Outcome(error=error.detail)
    body = request_body(delivery)
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Dumont-Event": delivery.event,
        "Dumont-Delivery": str(delivery.pk),
        "Dumont-Signature": signing.signature_header(endpoint.secret, body, timestamp),
        # We connect to the address we checked, not to the name (see ssrf.py); the server
        # still sees its own name in Host and, over TLS, in SNI and the certificate check.
        "Host": target.url.netloc.decode("ascii"),
    }
    extensions = {}
    if target.url.scheme == "https" and not _is_ip_literal(target.url.host):
        extensions["sni_hostname"] = target.url.host
    pinned_url = target.url.copy_with(host=str(target.addresses[0]))
    timeout_seconds = settings.WEBHOOK_TIMEOUT_SECONDS
    deadline = time.monotonic() + 2 * timeout_seconds
    # trust_env=False: no proxy from the environment, which would resolve the name itself.
    with httpx.Client(
        timeout=timeout_seconds, follow_redirects=False, trust_env=False, verify=tls_context()
    ) as client:
        request = client.build_request(
            "POST", pinned_url, content=body, headers=headers, extensions=extensions
        )
        try:
            response = client.send(request, stream=True)
            try:
                excerpt = _read_excerpt(response, deadline)
            finally:
                response.close()
        except httpx.HTTPError as error:
            return Outcome(error=f"{type(error).__name__}: {error}"[:500])
    error = ""
    if response.is_redirect:
        error = "Redirects are not followed; point the endpoint at the final URL."
    elif not response.is_success:
        error = f"The endpoint answered HTTP {response.status_code}."
    return Outcome(status_code=response.status_code, error=error, body_excerpt=excerpt)


def _still_this_attempt(delivery: WebhookDelivery):
    """The row, if no later attempt has claimed it and no outcome has been written since."""
    # attempt_count fences the write: if this attempt outlived its lease and another worker
    # claimed the row, that worker's outcome is the one kept; and a row that succeeded or
    # failed is never written again.
    return WebhookDelivery.objects.filter(
        pk=delivery.pk,
        status=WebhookDelivery.Status.PENDING,
        attempt_count=delivery.attempt_count,
    )


def record(delivery: WebhookDelivery, outcome: Outcome) -> WebhookDelivery:
    """Store an attempt's outcome: succeeded, a retry at the next backoff step, or failed."""
    now = timezone.now()
    changes = {
        "response_status_code": outcome.status_code,
        "last_error": outcome.error[:500],
        "response_body_excerpt": outcome.body_excerpt,
    }
    if outcome.is_success:
        changes.update(
            status=WebhookDelivery.Status.SUCCEEDED, delivered_at=now, next_attempt_at=None
        )
    elif delivery.attempt_count >= MAX_ATTEMPTS:
        changes.update(status=WebhookDelivery.Status.FAILED, next_attempt_at=None)
    else:
        backoff = timedelta(seconds=BACKOFF_SECONDS[delivery.attempt_count - 1])
        changes.update(next_attempt_at=now + backoff)
    _still_this_attempt(delivery).update(**changes)
    delivery.refresh_from_db()
    return delivery


def attempt_delivery(tenant_id: int, delivery_id: int) -> WebhookDelivery | None:
    """Claim a due delivery, POST it once and record the outcome; None if it was not ours."""
    delivery = claim(tenant_id, delivery_id, timezone.now())
    if delivery is None:
        return None
    if not delivery.endpoint.is_active:
        # Disabling an endpoint stops its pending retries too.
        outcome = Outcome(error="The endpoint was disabled.")
        _still_this_attempt(delivery).update(
            status=WebhookDelivery.Status.FAILED, next_attempt_at=None, last_error=outcome.error
        )
        delivery.refresh_from_db()
        return delivery
    outcome = send(delivery)
    delivery = record(delivery, outcome)
    logger.info(
        "webhook delivery %s (tenant %s, event %s) attempt %s: %s %s",
        delivery.pk,
        tenant_id,
        delivery.event,
        delivery.attempt_count,
        outcome.status_code or "-",
        outcome.error or "ok",
    )
    return delivery
