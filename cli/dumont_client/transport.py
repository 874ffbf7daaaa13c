"""HTTP with the API's conventions: bearer token, JSON, errors as exceptions, retries, pages.

Retries: 429, 502, 503 and 504 answers and transport failures are retried with exponential
backoff (jittered), waiting what `Retry-After` asks for when the server says so, up to a cap.
A request that may have changed something is retried only when that is known not to have
happened: a POST is retried after a 429 (the server refused it before doing anything) or a
failure to connect (it was never sent), never after a 5xx or a timeout while reading the answer.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from dumont_client.errors import APIConnectionError, error_for
from dumont_client.version import __version__

RETRY_STATUSES = frozenset({429, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Failures that happen before the request leaves this machine: safe to retry for any method.
NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def retry_after_seconds(response: httpx.Response) -> float | None:
    """`Retry-After` as seconds, from either of its forms (delta seconds or an HTTP date)."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


class Transport:
    """One authenticated HTTP connection pool to the API."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        timeout: float,
        max_retries: int = 3,
        backoff_seconds: float = 0.5,
        max_retry_wait_seconds: float = 30.0,
        http_transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.max_retry_wait_seconds = max_retry_wait_seconds
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=base_url,
            timeout=timeout,
            transport=http_transport,
            headers={
                "Authorization": f"Bearer {api_key}",
                "Accept": "application/json",
                "User-Agent": f"dumont-cli/{__version__}",
            },
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        asked = retry_after_seconds(response) if response is not None else None
        if asked is not None:
            return min(asked, self.max_retry_wait_seconds)
        backoff = self.backoff_seconds * 2**attempt
        return min(backoff * (0.5 + random.random() / 2), self.max_retry_wait_seconds)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """The decoded JSON answer (None for an empty one); raises a DumontError on failure."""
        method = method.upper()
        is_idempotent = method in IDEMPOTENT_METHODS
        if params:
            params = {key: value for key, value in params.items() if value is not None}
        attempt = 0
        while True:
            has_attempts_left = attempt < self.max_retries
            try:
                response = self._http.request(method, path, params=params or None, json=json)
            except NOT_SENT_ERRORS as error:
                if not has_attempts_left:
                    raise APIConnectionError(
                        f"cannot reach {self.base_url}: {error or type(error).__name__}"
                    ) from error
                self._sleep(self._delay(attempt, None))
                attempt += 1
                continue
            except httpx.TransportError as error:
                # Sent, but the answer was lost: only a request that changes nothing is resent.
                if not (is_idempotent and has_attempts_left):
                    raise APIConnectionError(
                        f"no answer from {self.base_url}: {error or type(error).__name__}"
                    ) from error
                self._sleep(self._delay(attempt, None))
                attempt += 1
                continue
            is_retryable = response.status_code in RETRY_STATUSES and (
                is_idempotent or response.status_code == 429
            )
            if is_retryable and has_attempts_left:
                self._sleep(self._delay(attempt, response))
                attempt += 1
                continue
            return self._decoded(response)

    def _decoded(self, response: httpx.Response) -> Any:
        body: Any = None
        if response.content:
            try:
                body = response.json()
            except ValueError:
                body = response.text
        if response.is_success:
            return body
        error = error_for(response.status_code, body, response.reason_phrase)
        if response.status_code == 429 and "retry_after_seconds" not in error.body:
            asked = retry_after_seconds(response)
            if asked is not None:
                error.body["retry_after_seconds"] = asked
        raise error

    def paginate(self, path: str, params: dict[str, Any] | None = None) -> Iterator[Any]:
        """Every item of a list, page after page (`{"count", "next", "previous", "results"}`)."""
        body = self.request("GET", path, params=params)
        while True:
            if isinstance(body, list):  # an unpaginated list
                yield from body
                return
            yield from body.get("results") or []
            following = body.get("next")
            if not following:
                return
            body = self.request("GET", self._relative(following))

    def _relative(self, url: str) -> str:
        """The path and query of a `next` link: the token only ever goes to our base URL."""
        if url.startswith(self.base_url):
            return url[len(self.base_url) :]
        parsed = httpx.URL(url)
        return parsed.raw_path.decode("ascii")
