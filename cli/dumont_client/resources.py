"""One class per API area: `client.instances`, `.snapshots`, `.ssh_keys`, `.billing`, `.spot`,
`.webhooks`, `.advisor`. Lists are iterators that fetch the following pages as they go."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from dumont_client.errors import UnexpectedStatus, WaitTimeout
from dumont_client.models import (
    Advice,
    Balance,
    CheckoutSession,
    Instance,
    InstanceEvent,
    LedgerEntry,
    Snapshot,
    SshKey,
    UsageDay,
    Webhook,
    WebhookDelivery,
)
from dumont_client.transport import Transport

# Without max_price the SDK still has to send one (the API requires it): a ceiling per GPU high
# enough for any catalog GPU. The cheapest offer under it is taken, so this is not the price paid.
DEFAULT_MAX_PRICE_PER_GPU_USD = Decimal("5.00")

# Statuses an instance never leaves by itself: waiting for anything else is pointless.
FINAL_INSTANCE_STATUSES = frozenset({"error", "deleted"})
FINAL_SNAPSHOT_STATUSES = frozenset({"failed", "error", "deleted"})


def _path_part(value: str | int) -> str:
    return quote(str(value), safe="")


def _price(value: float | Decimal | str) -> float:
    # JSON numbers are floats; Decimal keeps a typed-in price like 0.1 exact up to here.
    return float(Decimal(str(value)))


def wait_for_status(
    fetch: Callable[[], Any],
    wanted: str | Iterable[str],
    *,
    final: frozenset[str],
    timeout_seconds: float,
    poll_seconds: float,
    on_poll: Callable[[Any], None] | None = None,
) -> Any:
    """Poll `fetch()` until its `.status` is one of `wanted`; raise on a final status or timeout."""
    targets = {wanted} if isinstance(wanted, str) else set(wanted)
    deadline = time.monotonic() + timeout_seconds
    while True:
        current = fetch()
        if on_poll is not None:
            on_poll(current)
        if current.status in targets:
            return current
        if current.status in final:
            reason = getattr(current, "status_reason", "") or ""
            raise UnexpectedStatus(
                f"{current.id} is {current.status}"
                + (f" ({reason})" if reason else "")
                + f", not {' or '.join(sorted(targets))}",
                body={"status": current.status},
            )
        if time.monotonic() >= deadline:
            raise WaitTimeout(
                f"{current.id} is still {current.status} after {timeout_seconds:g} s "
                f"(waiting for {' or '.join(sorted(targets))})",
                body={"status": current.status},
            )
        time.sleep(poll_seconds)


class Resource:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport


class Instances(Resource):
    """GPU machines: create, list, hibernate, wake, delete, and their status history."""

    def create(
        self,
        gpu: str,
        *,
        region: str | None = None,
        max_price: float | Decimal | str | None = None,
        gpu_count: int = 1,
        ssh_key_ids: Iterable[int] | None = None,
        name: str | None = None,
        disk_gb: int | None = None,
        image: str | None = None,
    ) -> Instance:
        """Ask for a machine; it comes back `pending` (see `wait_until`).

        `gpu` and `region` accept any case and spacing (`RTX4090`, `us-east`). `max_price` is
        USD per hour for the whole machine; without it, DEFAULT_MAX_PRICE_PER_GPU_USD per GPU.
        Raises NoCapacity (with `.alternatives`) or InsufficientCredits.
        """
        if max_price is None:
            max_price = DEFAULT_MAX_PRICE_PER_GPU_USD * gpu_count
        body: dict[str, Any] = {
            "gpu": gpu,
            "max_price": _price(max_price),
            "gpu_count": gpu_count,
        }
        optional = {
            "region": region,
            "name": name,
            "disk_gb": disk_gb,
            "image": image,
            "ssh_key_ids": list(ssh_key_ids) if ssh_key_ids is not None else None,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        return Instance.from_api(self._transport.request("POST", "/api/instances", json=body))

    def list(
        self, *, status: str | None = None, gpu: str | None = None, region: str | None = None
    ) -> Iterator[Instance]:
        """Every instance of the organisation (all pages), newest first."""
        params = {"status": status, "gpu": gpu, "region": region}
        for item in self._transport.paginate("/api/instances", params):
            yield Instance.from_api(item)

    def get(self, instance_id: str) -> Instance:
        path = f"/api/instances/{_path_part(instance_id)}"
        return Instance.from_api(self._transport.request("GET", path))

    def hibernate(self, instance_id: str) -> Instance:
        """Stop the machine and the bill, keep the disk. InvalidTransition unless running."""
        path = f"/api/instances/{_path_part(instance_id)}/hibernate"
        return Instance.from_api(self._transport.request("POST", path))

    def wake(self, instance_id: str) -> Instance:
        """Start a hibernated instance again. InvalidTransition unless hibernated."""
        path = f"/api/instances/{_path_part(instance_id)}/wake"
        return Instance.from_api(self._transport.request("POST", path))

    def delete(self, instance_id: str) -> Instance:
        """Destroy the machine and its disk; the answer is `deleting`."""
        path = f"/api/instances/{_path_part(instance_id)}"
        return Instance.from_api(self._transport.request("DELETE", path))

    def events(self, instance_id: str) -> Iterator[InstanceEvent]:
        """Every status change, oldest first."""
        path = f"/api/instances/{_path_part(instance_id)}/events"
        for item in self._transport.paginate(path):
            yield InstanceEvent.from_api(item)

    def wait_until(
        self,
        instance_id: str,
        status: str | Iterable[str] = "running",
        *,
        timeout: float = 600,
        poll_seconds: float = 2,
        on_poll: Callable[[Instance], None] | None = None,
    ) -> Instance:
        """Poll until the instance is in `status`. Raises WaitTimeout after `timeout` seconds,
        UnexpectedStatus if it ends in `error` or `deleted` instead."""
        return wait_for_status(
            lambda: self.get(instance_id),
            status,
            final=FINAL_INSTANCE_STATUSES,
            timeout_seconds=timeout,
            poll_seconds=poll_seconds,
            on_poll=on_poll,
        )


class Snapshots(Resource):
    """Snapshots of an instance's workspace (the `/api/snapshots` contract)."""

    def list(self, *, instance_id: str | None = None) -> Iterator[Snapshot]:
        for item in self._transport.paginate("/api/snapshots", {"instance": instance_id}):
            yield Snapshot.from_api(item)

    def get(self, snapshot_id: str) -> Snapshot:
        path = f"/api/snapshots/{_path_part(snapshot_id)}"
        return Snapshot.from_api(self._transport.request("GET", path))

    def create(self, instance_id: str, *, name: str | None = None) -> Snapshot:
        body: dict[str, Any] = {"instance_id": instance_id}
        if name:
            body["name"] = name
        return Snapshot.from_api(self._transport.request("POST", "/api/snapshots", json=body))

    def delete(self, snapshot_id: str) -> None:
        self._transport.request("DELETE", f"/api/snapshots/{_path_part(snapshot_id)}")

    def restore(
        self, snapshot_id: str, *, gpu: str | None = None, region: str | None = None
    ) -> Instance:
        """A new instance from the snapshot, on `gpu` in `region` (or the snapshot's own)."""
        body = {key: value for key, value in {"gpu": gpu, "region": region}.items() if value}
        path = f"/api/snapshots/{_path_part(snapshot_id)}/restore"
        return Instance.from_api(self._transport.request("POST", path, json=body))

    def wait_until(
        self,
        snapshot_id: str,
        status: str | Iterable[str] = "completed",
        *,
        timeout: float = 1800,
        poll_seconds: float = 2,
        on_poll: Callable[[Snapshot], None] | None = None,
    ) -> Snapshot:
        return wait_for_status(
            lambda: self.get(snapshot_id),
            status,
            final=FINAL_SNAPSHOT_STATUSES,
            timeout_seconds=timeout,
            poll_seconds=poll_seconds,
            on_poll=on_poll,
        )


class SshKeys(Resource):
    def list(self) -> Iterator[SshKey]:
        for item in self._transport.paginate("/api/ssh-keys"):
            yield SshKey.from_api(item)

    def get(self, key_id: int) -> SshKey:
        return SshKey.from_api(self._transport.request("GET", f"/api/ssh-keys/{int(key_id)}"))

    def create(self, name: str, public_key: str) -> SshKey:
        body = {"name": name, "public_key": public_key}
        return SshKey.from_api(self._transport.request("POST", "/api/ssh-keys", json=body))

    def delete(self, key_id: int) -> None:
        self._transport.request("DELETE", f"/api/ssh-keys/{int(key_id)}")


class Billing(Resource):
    def balance(self) -> Balance:
        return Balance.from_api(self._transport.request("GET", "/api/billing/balance"))

    def ledger(self, *, kind: str | None = None) -> Iterator[LedgerEntry]:
        """Every credit movement, newest first."""
        for item in self._transport.paginate("/api/billing/ledger", {"kind": kind}):
            yield LedgerEntry.from_api(item)

    def usage(self, *, instance_id: str | None = None) -> list[UsageDay]:
        """Usage charged per instance and day (UTC), newest first."""
        rows = self._transport.request(
            "GET", "/api/billing/usage", params={"instance": instance_id}
        )
        return [UsageDay.from_api(row) for row in rows]

    def checkout(self, amount_usd: float | Decimal | str, method: str = "card") -> CheckoutSession:
        """A Stripe Checkout session for a top-up (`card`, `pix`, `boleto`): pay at `.url`."""
        body = {"amount_usd": str(Decimal(str(amount_usd))), "method": method}
        answer = self._transport.request("POST", "/api/billing/checkout", json=body)
        return CheckoutSession.from_api(answer)


class Spot(Resource):
    """The spot-market intelligence endpoints. Answers are plain dicts, as documented."""

    def _get(self, path: str, **params: Any) -> dict[str, Any]:
        return self._transport.request("GET", f"/api/spot/{path}", params=params)

    def monitor(self, *, region: str | None = None) -> dict[str, Any]:
        return self._get("monitor", region=region)

    def llm_gpus(
        self,
        model_size: str = "7B",
        *,
        min_vram: int | None = None,
        max_price: float | None = None,
        mode: str | None = None,
        tokens: float | None = None,
    ) -> dict[str, Any]:
        return self._get(
            "llm-gpus",
            model_size=model_size,
            min_vram=min_vram,
            max_price=max_price,
            mode=mode,
            tokens=tokens,
        )

    def fleet_strategy(
        self,
        workload: str,
        budget: float,
        *,
        reliability: str | None = None,
        hours_per_gpu: int | None = None,
    ) -> dict[str, Any]:
        return self._get(
            "fleet-strategy",
            workload=workload,
            budget=budget,
            reliability=reliability,
            hours_per_gpu=hours_per_gpu,
        )

    def prediction(self, gpu: str) -> dict[str, Any]:
        return self._get(f"prediction/{_path_part(gpu)}")

    def availability(self, gpu: str) -> dict[str, Any]:
        return self._get("availability", gpu=gpu)

    def training_cost(
        self,
        model: str,
        dataset_size: str,
        *,
        epochs: float | None = None,
        mode: str | None = None,
    ) -> dict[str, Any]:
        return self._get(
            "training-cost", model=model, dataset_size=dataset_size, epochs=epochs, mode=mode
        )

    def savings(self, gpu: str, hours: float) -> dict[str, Any]:
        return self._get("savings", gpu=gpu, hours=hours)

    def reliability(self, gpu: str) -> dict[str, Any]:
        return self._get("reliability", gpu=gpu)

    def interruption_rates(self, period: str = "7d") -> dict[str, Any]:
        return self._get("interruption-rates", period=period)

    def safe_windows(self, gpu: str) -> dict[str, Any]:
        return self._get(f"safe-windows/{_path_part(gpu)}")


class Webhooks(Resource):
    def list(self) -> Iterator[Webhook]:
        for item in self._transport.paginate("/api/webhooks"):
            yield Webhook.from_api(item)

    def get(self, webhook_id: int) -> Webhook:
        return Webhook.from_api(self._transport.request("GET", f"/api/webhooks/{int(webhook_id)}"))

    def create(
        self,
        url: str,
        events: Iterable[str],
        *,
        description: str | None = None,
        is_active: bool = True,
    ) -> Webhook:
        """Register an endpoint; the answer's `.secret` (shown once) signs every delivery."""
        body: dict[str, Any] = {"url": url, "events": list(events), "is_active": is_active}
        if description is not None:
            body["description"] = description
        return Webhook.from_api(self._transport.request("POST", "/api/webhooks", json=body))

    def delete(self, webhook_id: int) -> None:
        self._transport.request("DELETE", f"/api/webhooks/{int(webhook_id)}")

    def rotate_secret(self, webhook_id: int) -> Webhook:
        path = f"/api/webhooks/{int(webhook_id)}/rotate-secret"
        return Webhook.from_api(self._transport.request("POST", path))

    def ping(self, webhook_id: int) -> dict[str, Any]:
        """Send a `ping` test delivery now."""
        return self._transport.request("POST", f"/api/webhooks/{int(webhook_id)}/ping") or {}

    def deliveries(
        self, webhook_id: int, *, status: str | None = None, event: str | None = None
    ) -> Iterator[WebhookDelivery]:
        path = f"/api/webhooks/{int(webhook_id)}/deliveries"
        for item in self._transport.paginate(path, {"status": status, "event": event}):
            yield WebhookDelivery.from_api(item)


class Advisor(Resource):
    def recommend(
        self,
        workload: str,
        *,
        model_size_b: float | None = None,
        budget_usd: float | None = None,
        deadline_hours: float | None = None,
    ) -> Advice:
        """Which GPU and region for a workload (the `POST /api/advisor` contract)."""
        body: dict[str, Any] = {"workload": workload}
        optional = {
            "model_size_b": model_size_b,
            "budget_usd": budget_usd,
            "deadline_hours": deadline_hours,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        return Advice.from_api(self._transport.request("POST", "/api/advisor", json=body))
