"""`Client`: the entry point of the SDK."""

from __future__ import annotations

from types import TracebackType

import httpx

from dumont_client import config
from dumont_client.errors import ConfigurationError
from dumont_client.models import Me
from dumont_client.resources import (
    Advisor,
    Billing,
    Instances,
    Snapshots,
    Spot,
    SshKeys,
    Webhooks,
)
from dumont_client.transport import Transport

DEFAULT_TIMEOUT_SECONDS = 30.0


class Client:
    """The Dumont Cloud API.

    `api_key` and `base_url` default to $DUMONT_API_KEY / $DUMONT_API_URL, then to what
    `dumont login` saved. Every call raises a `DumontError` subclass on failure.

        client = Client(api_key="dmt_...")
        instance = client.instances.create(gpu="RTX 4090")
        client.instances.wait_until(instance.id, "running")
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        *,
        max_retries: int = 3,
        max_retry_wait_seconds: float = 30.0,
        http_transport: httpx.BaseTransport | None = None,
    ) -> None:
        settings = config.resolve(api_key, base_url)
        if not settings.api_key:
            raise ConfigurationError(
                "no API key: run `dumont login`, set DUMONT_API_KEY or pass api_key="
            )
        self.base_url = settings.api_url
        self._transport = Transport(
            base_url=settings.api_url,
            api_key=settings.api_key,
            timeout=timeout,
            max_retries=max_retries,
            max_retry_wait_seconds=max_retry_wait_seconds,
            http_transport=http_transport,
        )
        self.instances = Instances(self._transport)
        self.snapshots = Snapshots(self._transport)
        self.ssh_keys = SshKeys(self._transport)
        self.billing = Billing(self._transport)
        self.spot = Spot(self._transport)
        self.webhooks = Webhooks(self._transport)
        self.advisor = Advisor(self._transport)

    def me(self) -> Me:
        """Who the key belongs to: e-mail, organisation and role."""
        return Me.from_api(self._transport.request("GET", "/api/me"))

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
