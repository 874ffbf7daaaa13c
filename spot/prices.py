"""Market prices as the endpoints read them: live samples, hourly rollups."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Avg, Max, Min

from spot.models import MarketSample, PriceRollup

LIVE_WINDOW = timedelta(minutes=30)  # the monitor samples every 5 minutes


def usd(micros: float) -> float:
    return round(micros / 1_000_000, 4)


@dataclass(frozen=True)
class RegionNow:
    region: str
    min_micros: int
    median_micros: int
    available: int


def latest_by_region(gpu: str, now: datetime) -> list[RegionNow]:
    """The newest sample per region within LIVE_WINDOW (live offers only)."""
    recent = MarketSample.objects.filter(
        gpu=gpu, taken_at__gt=now - LIVE_WINDOW, taken_at__lte=now
    ).exclude(region="")
    newest: dict[str, MarketSample] = {}
    for sample in recent.order_by("taken_at"):
        newest[sample.region] = sample
    return [
        RegionNow(region, sample.min_micros, sample.median_micros, sample.available)
        for region, sample in sorted(newest.items())
    ]


def cheapest_offer(gpu: str, now: datetime, *, region: str = "") -> tuple[int | None, str | None]:
    """(price, region) of the cheapest live offer, in `region` if given. With no live offer in
    any region: the newest hourly rollup's price (history) and no region."""
    live = [row for row in latest_by_region(gpu, now) if not region or row.region == region]
    if live:
        best = min(live, key=lambda row: row.min_micros)
        return best.min_micros, best.region
    if region:
        return None, None
    last = PriceRollup.objects.filter(period="hour", gpu=gpu, starts_at__lte=now)
    return last.order_by("-starts_at").values_list("min_micros", flat=True).first(), None


def current_micros(gpu: str, now: datetime, *, region: str = "") -> int | None:
    """The cheapest price now (see cheapest_offer)."""
    return cheapest_offer(gpu, now, region=region)[0]


@dataclass(frozen=True)
class Window:
    average_micros: float | None
    min_micros: int | None
    max_micros: int | None
    start_micros: int | None  # the first hour of the window: what "change" compares with


def window(gpu: str, since: datetime, until: datetime) -> Window:
    """The cheapest price per hour over a window (hourly rollups, all regions)."""
    hours = PriceRollup.objects.filter(
        period="hour", gpu=gpu, starts_at__gte=since, starts_at__lt=until
    )
    stats = hours.aggregate(
        average=Avg("min_micros"), low=Min("min_micros"), high=Max("min_micros")
    )
    first = hours.order_by("starts_at").values_list("min_micros", flat=True).first()
    return Window(stats["average"], stats["low"], stats["high"], first)


def hourly_points(gpu: str, since: datetime, until: datetime) -> list[tuple[datetime, float]]:
    """(hour, cheapest price in USD) over all regions, for forecasting."""
    rows = (
        PriceRollup.objects.filter(
            period="hour", gpu=gpu, starts_at__gte=since, starts_at__lt=until
        )
        .values("starts_at")
        .annotate(low=Min("min_micros"))
        .order_by("starts_at")
    )
    return [(row["starts_at"], row["low"] / 1_000_000) for row in rows]


def tracked_gpus(since: datetime) -> list[str]:
    return sorted(
        PriceRollup.objects.filter(period="hour", starts_at__gte=since)
        .values_list("gpu", flat=True)
        .distinct()
    )
