"""How spot learns what the market offers right now, without importing the apps above it.

`spot` sits below `instances` (DESIGN.md: accounts <- spot <- billing <- instances), so it cannot
ask the active GPU provider itself. `instances` registers a source in its AppConfig.ready(); the
spot monitor task calls `current_offers()`.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class MarketOffer:
    """One rentable offer as a provider lists it, priced per GPU-hour in micro-USD."""

    provider: str  # "sim", "vast"
    gpu: str  # catalog name, e.g. "RTX 4090"
    region: str  # one of spot.catalog.REGIONS
    gpu_count: int
    price_micros_per_gpu_hour: int
    available: int  # machines of this kind the provider can start now


OfferSource = Callable[[], Iterable[MarketOffer]]
_sources: list[OfferSource] = []


def register_offer_source(source: OfferSource) -> None:
    """Called once by the app that owns the providers (instances) at start-up."""
    if source not in _sources:
        _sources.append(source)


def current_offers() -> list[MarketOffer]:
    """Every offer every registered source lists now."""
    return [offer for source in _sources for offer in source()]
