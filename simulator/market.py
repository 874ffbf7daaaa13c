"""The simulated spot market: offers, prices and interruption hazard, computed, not stored.

Prices are anchored on the Vast.ai catalog (`spot/data/reference/skypilot/vast_vms.csv`, through
`spot.catalog.anchor_price_usd`): per GPU-hour, times a regional factor, a daily rhythm (demand
peaks in the US afternoon), a weekly rhythm (weekdays dearer than weekends) and noise. The noise
is a hash of (seed, GPU, region, 5-minute bucket), so every process that asks for the price of
the same offer at the same time gets the same answer, with no shared state.

Interruption hazard per GPU comes from AWS's Spot Instance Advisor
(`spot/data/reference/aws_spot_advisor.csv`, 2025-06-28 snapshot, Linux): the mean bucket of the
matching accelerator, read as the share of capacity reclaimed per month (bucket midpoints). GPUs
AWS does not rent (consumer cards) get DEFAULT_MONTHLY_INTERRUPTION, the middle bucket.
"""

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from spot.catalog import REGIONS, Gpu, anchor_price_usd, gpus, vast_list_prices
from spot.prior import prior_hazard_per_hour

REGION_FACTOR = {"US-East": 1.00, "US-West": 1.03, "EU-West": 1.06, "Asia-Pacific": 0.97}
GPU_COUNTS = (1, 2, 4, 8)
DAILY_AMPLITUDE = 0.08  # ±8 % over the day
WEEKDAY_PREMIUM = 0.04  # +4 % Monday to Friday, -4 % at the weekend
NOISE_AMPLITUDE = 0.05  # ±5 % per 5-minute bucket
PEAK_HOUR_UTC = 20  # ~ 3 pm US-East
BUCKET_SECONDS = 300


@dataclass(frozen=True)
class MarketOffer:
    offer_id: str
    gpu: str
    gpu_count: int
    region: str
    price_micros_per_hour: int
    available: int

    def as_json(self) -> dict:
        return {
            "offer_id": self.offer_id,
            "gpu": self.gpu,
            "gpu_count": self.gpu_count,
            "region": self.region,
            "price_micros_per_hour": self.price_micros_per_hour,
            "available": self.available,
        }


def unit_noise(seed: int, *parts: object) -> float:
    """A deterministic number in [0, 1) for these parts."""
    digest = hashlib.sha256(":".join(str(part) for part in (seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def offer_id(gpu: Gpu, region: str, gpu_count: int) -> str:
    return f"{gpu.key.lower()}-{region.lower()}-{gpu_count}x"


@cache
def regions_of(gpu_name: str) -> tuple[str, ...]:
    """Regions where the Vast.ai catalog lists this GPU."""
    listed = {region for price in vast_list_prices()[gpu_name] for region in price.region_choices}
    return tuple(region for region in REGION_FACTOR if region in listed)


def price_micros(seed: int, gpu: Gpu, region: str, gpu_count: int, at: datetime) -> int:
    hour = at.hour + at.minute / 60
    daily = DAILY_AMPLITUDE * math.cos(2 * math.pi * (hour - PEAK_HOUR_UTC) / 24)
    weekly = WEEKDAY_PREMIUM if at.weekday() < 5 else -WEEKDAY_PREMIUM
    bucket = int(at.timestamp() // BUCKET_SECONDS)
    noise = (unit_noise(seed, gpu.name, region, bucket) - 0.5) * 2 * NOISE_AMPLITUDE
    per_gpu = anchor_price_usd(gpu) * REGION_FACTOR[region] * (1 + daily + weekly + noise)
    return round(per_gpu * gpu_count * 1_000_000)


def capacity(seed: int, gpu: Gpu, region: str, gpu_count: int, at: datetime) -> int:
    """Machines of this kind the market has now (before ours are subtracted): 0 to 8, hourly."""
    listings = len(vast_list_prices()[gpu.name])
    hour_bucket = int(at.timestamp() // 3600)
    scale = min(8, 2 + listings) / gpu_count**0.5
    return int(unit_noise(seed, "capacity", gpu.name, region, gpu_count, hour_bucket) * scale) + 1


def market(seed: int, at: datetime, taken: dict[str, int] | None = None) -> list[MarketOffer]:
    """Every offer now, cheapest first; `taken` counts our running machines per offer id."""
    taken = taken or {}
    offers = []
    for gpu in gpus():
        if not vast_list_prices()[gpu.name]:
            continue
        for region in regions_of(gpu.name):
            for count in GPU_COUNTS:
                identifier = offer_id(gpu, region, count)
                available = capacity(seed, gpu, region, count, at) - taken.get(identifier, 0)
                offers.append(
                    MarketOffer(
                        offer_id=identifier,
                        gpu=gpu.name,
                        gpu_count=count,
                        region=region,
                        price_micros_per_hour=price_micros(seed, gpu, region, count, at),
                        available=max(0, available),
                    )
                )
    offers.sort(key=lambda offer: (offer.price_micros_per_hour, offer.offer_id))
    return offers


def hazard_per_hour(gpu_name: str) -> float:
    """Probability rate (per hour) that the market takes a running machine of this GPU back."""
    return prior_hazard_per_hour(gpu_name)


# CPU standby VMs (offer id `standby-<region>`): unlimited, never taken back by the market, at
# about GCP's e2-medium spot price.
STANDBY_PRICE_MICROS_PER_HOUR = 30_000


def standby_offer(offer_id: str) -> MarketOffer | None:
    """The CPU standby offer of a region, e.g. `standby-EU-West`; None for any other id."""
    if not offer_id.startswith("standby-"):
        return None
    region = offer_id.removeprefix("standby-")
    if region not in REGIONS:
        return None
    return MarketOffer(offer_id, "CPU", 0, region, STANDBY_PRICE_MICROS_PER_HOUR, 1_000)
