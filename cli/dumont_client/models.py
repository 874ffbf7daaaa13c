"""Typed results. Fields the server adds later are kept in `raw`, never an error.

Times are timezone-aware `datetime`s; money is what the API sends (USD as float or text, and
integer micro-dollars in `*_micros`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypeVar

Model = TypeVar("Model", bound="ApiObject")


def _parse(value: Any, annotation: Any) -> Any:
    """Convert one JSON value to the field's type: datetimes, dates and nested objects."""
    if value is None:
        return None
    options = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    for option in options:
        if option is datetime and isinstance(value, str):
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        if option is date and isinstance(value, str):
            return date.fromisoformat(value)
        if isinstance(option, type) and issubclass(option, ApiObject) and isinstance(value, dict):
            return option.from_api(value)
    return value


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


@dataclass
class ApiObject:
    """Base of every result: build with `from_api(json)`; the whole answer stays in `raw`."""

    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False, kw_only=True)

    @classmethod
    def from_api(cls: type[Model], data: dict[str, Any]) -> Model:
        hints = typing.get_type_hints(cls)
        values = {
            item.name: _parse(data[item.name], hints[item.name])
            for item in dataclasses.fields(cls)
            if item.name != "raw" and item.name in data
        }
        return cls(**values, raw=dict(data))

    def __getitem__(self, key: str) -> Any:
        """`instance["some_new_field"]` reads any field of the answer, known here or not."""
        return self.raw[key]


@dataclass
class Connection(ApiObject):
    ssh_command: str | None = None
    ssh_host: str | None = None
    ssh_port: int | None = None
    jupyter_url: str | None = None
    port_url_template: str | None = None
    dns_name: str | None = None
    ip_address: str | None = None


@dataclass
class Instance(ApiObject):
    id: str
    status: str
    gpu: str = ""
    gpu_count: int = 1
    name: str = ""
    region: str | None = None
    requested_region: str | None = None
    max_price: float | None = None
    price_per_hour: float | None = None
    provider: str | None = None
    provider_id: str | None = None
    status_reason: str | None = None
    status_changed_at: datetime | None = None
    disk_gb: int | None = None
    image: str | None = None
    ssh_key_ids: list[int] = field(default_factory=list)
    connection: Connection | None = None
    gpu_utilization_percent: float | None = None
    last_heartbeat_at: datetime | None = None
    created_at: datetime | None = None
    running_since: datetime | None = None
    deleted_at: datetime | None = None


@dataclass
class InstanceEvent(ApiObject):
    from_status: str | None
    to_status: str
    reason: str = ""
    actor: str = ""
    created_at: datetime | None = None
    id: int | None = None


@dataclass
class SshKey(ApiObject):
    id: int
    name: str
    fingerprint: str = ""
    key_type: str = ""
    bits: int | None = None
    public_key: str = ""
    created_at: datetime | None = None


@dataclass
class Balance(ApiObject):
    balance_micro_usd: int
    balance_usd: str
    currency: str = "USD"


@dataclass
class LedgerEntry(ApiObject):
    id: int
    kind: str
    amount_micros: int
    amount_usd: str = ""
    created_at: datetime | None = None
    currency: str = "USD"
    amount_minor: int | None = None
    fx_rate: str | None = None
    reference: str = ""
    description: str = ""


@dataclass
class UsageDay(ApiObject):
    day: date
    subject_id: str
    kind: str
    amount_micros: int
    amount_usd: str = ""


@dataclass
class CheckoutSession(ApiObject):
    id: str
    url: str
    status: str = ""
    currency: str = ""
    amount_minor: int | None = None
    fx_rate: str | None = None


@dataclass
class Snapshot(ApiObject):
    """A snapshot (contract of `/api/snapshots`; unknown fields are in `raw`)."""

    id: str
    status: str = ""
    instance_id: str | None = None
    name: str = ""
    size_bytes: int | None = None
    progress_percent: float | None = None
    created_at: datetime | None = None
    completed_at: datetime | None = None


@dataclass
class Webhook(ApiObject):
    id: int
    url: str
    events: list[str] = field(default_factory=list)
    description: str = ""
    is_active: bool = True
    secret_prefix: str = ""
    secret: str | None = None  # only in the answers to create and rotate-secret
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass
class WebhookDelivery(ApiObject):
    id: int
    status: str
    endpoint: int | None = None
    event: str = ""
    event_id: str = ""
    attempt_count: int = 0
    next_attempt_at: datetime | None = None
    last_attempt_at: datetime | None = None
    response_status_code: int | None = None
    last_error: str = ""
    created_at: datetime | None = None
    delivered_at: datetime | None = None


@dataclass
class Me(ApiObject):
    email: str
    role: str = ""
    tenant: dict[str, Any] = field(default_factory=dict)


@dataclass
class Advice(ApiObject):
    """The GPU advisor's answer (contract of `POST /api/advisor`)."""

    gpu: str
    region: str | None = None
    estimated_cost_usd: float | None = None
    estimated_hours: float | None = None
    reasoning: str = ""
    source: str = ""
