"""The one interface every GPU provider implements (DESIGN.md, "Providers").

GPU implementations: `sim` (the embedded default: an HTTP client of the simulated market,
`simulator/`), `vast` (Vast.ai). Standby (CPU VM) implementations: `sim`, `gcp` (Google Cloud).
Payloads are dataclasses; money is integer micro-USD per hour.
"""

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class ProviderError(Exception):
    """The provider refused or failed a call; retrying the same call will not help."""


class TransientProviderError(ProviderError):
    """A timeout, a 429 or a 5xx: the same call may succeed later, with backoff."""

    def __init__(self, message: str, *, retry_after_seconds: float | None = None):
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class OfferUnavailable(ProviderError):
    """The offer was taken or is now above the maximum price."""


class MachineNotFound(ProviderError):
    """The provider does not know this machine (destroyed, or never created)."""


@dataclass(frozen=True)
class Offer:
    """A machine the provider can start now."""

    provider: str
    offer_id: str
    gpu: str  # catalog name, spot.catalog.Gpu.name, e.g. "RTX 4090"
    gpu_count: int
    region: str  # one of spot.catalog.REGIONS
    price_micros_per_hour: int  # the whole machine, all its GPUs
    available: int


class MachineState(StrEnum):
    STARTING = "starting"  # created, booting
    RUNNING = "running"
    STOPPED = "stopped"  # stopped on request; start() brings it back
    INTERRUPTED = "interrupted"  # the spot market took it back (outbid / host reclaimed)
    DESTROYED = "destroyed"


@dataclass(frozen=True)
class MachineSpec:
    """What to run on a new machine: the agent needs the API URL and its instance token."""

    instance_id: str
    image: str
    disk_gb: int
    ssh_public_keys: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)  # DUMONT_API_URL, DUMONT_AGENT_TOKEN, ...


@dataclass(frozen=True)
class Machine:
    """A machine as the provider reports it."""

    provider_id: str
    state: MachineState
    gpu: str
    gpu_count: int
    region: str
    price_micros_per_hour: int
    ssh_host: str = ""
    ssh_port: int = 0
    public_ip: str = ""
    gpu_utilization_percent: float | None = None
    idempotency_key: str = ""
    offer_id: str = ""  # the offer it was rented from, where the provider tells


class GpuProvider(Protocol):
    name: str

    def search_offers(
        self,
        *,
        gpu: str | None,
        region: str | None,
        gpu_count: int | None,
        max_price_micros: int | None,
    ) -> list[Offer]:
        """Offers now, cheapest first; None means any GPU / region / price."""

    def create(self, offer: Offer, spec: MachineSpec, *, idempotency_key: str) -> Machine:
        """Start a machine from an offer; the same key always returns the same machine."""

    def get(self, provider_id: str) -> Machine:
        """The machine now; raises MachineNotFound if the provider does not know it."""

    def list_machines(self) -> list[Machine]:
        """Every machine this account has at the provider (for reconcile)."""

    def stop(self, provider_id: str) -> Machine:
        """Stop (keep the disk); idempotent."""

    def start(self, provider_id: str) -> Machine:
        """Start a stopped machine; idempotent."""

    def destroy(self, provider_id: str) -> None:
        """Destroy the machine and its disk; idempotent (a missing machine is not an error)."""


@dataclass(frozen=True)
class StandbySpec:
    """A CPU standby VM that follows an instance's workspace (its agent restores the syncs)."""

    instance_id: str
    region: str  # one of spot.catalog.REGIONS; the provider picks a zone in it
    disk_gb: int
    ssh_public_keys: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)  # DUMONT_API_URL, DUMONT_AGENT_TOKEN, ...


class StandbyProvider(Protocol):
    """Where CPU standbys run: `sim` (the simulator's CPU machines) or `gcp` (spot VMs)."""

    name: str

    def create_standby(self, spec: StandbySpec, *, idempotency_key: str) -> Machine:
        """Create and start the VM; the same key always returns the same VM. Machine.gpu is
        "CPU" and gpu_count 0; price_micros_per_hour is what the VM costs."""

    def get(self, provider_id: str) -> Machine:
        """The VM now; raises MachineNotFound if the provider does not know it."""

    def stop(self, provider_id: str) -> Machine:
        """Stop (keep the disk); idempotent."""

    def start(self, provider_id: str) -> Machine:
        """Start a stopped VM; idempotent."""

    def destroy(self, provider_id: str) -> None:
        """Delete the VM and its disk; idempotent."""
