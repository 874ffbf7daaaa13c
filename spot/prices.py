"""Market prices as the endpoints read them: live samples, hourly rollups."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Min

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


def cheapest_offer(
    gpu: str, now: datetime, *, region: str = "", live: list[RegionNow] | None = None
) -> tuple[int | None, str | None]:
    """(price, region) of the cheapest live offer, in `region` if given. With no live offer in
    any region: the newest hourly rollup's price (history) and no region. `live`: the GPU's
    rows of live_by_gpu, when the caller has them for every GPU."""
    if live is None:
        live = latest_by_region(gpu, now)
    live = [row for row in live if not region or row.region == region]
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


def live_by_gpu(now: datetime) -> dict[str, list[RegionNow]]:
    """latest_by_region for every GPU at once (one query: the monitor lists them all)."""
    recent = MarketSample.objects.filter(taken_at__gt=now - LIVE_WINDOW, taken_at__lte=now).exclude(
        region=""
    )
    newest: dict[tuple[str, str], tuple] = {}
    rows = recent.order_by("taken_at").values_list(
        "gpu", "region", "min_micros", "median_micros", "available"
    )
    for gpu, region, *values in rows:
        newest[(gpu, region)] = values
    by_gpu: dict[str, list[RegionNow]] = {}
    for (gpu, region), values in sorted(newest.items()):
        by_gpu.setdefault(gpu, []).append(RegionNow(region, *values))
    return by_gpu


@dataclass(frozen=True)
class Window:
    average_micros: float
    min_micros: int
    max_micros: int
    start_micros: int  # the cheapest in the window's first hour: what "change" compares with
    end_micros: int  # the cheapest in its last hour


def windows(since: datetime, until: datetime) -> dict[str, Window]:
    """Per GPU, the hourly rollups (all regions) between two times, in one query."""
    rows = (
        PriceRollup.objects.filter(period="hour", starts_at__gte=since, starts_at__lt=until)
        .order_by("gpu", "starts_at")
        .values_list("gpu", "starts_at", "min_micros")
    )
    hours: dict[str, dict[datetime, list[int]]] = {}
    for gpu, starts_at, low in rows:
        hours.setdefault(gpu, {}).setdefault(starts_at, []).append(low)
    result = {}
    for gpu, per_hour in hours.items():
        every = [low for lows in per_hour.values() for low in lows]
        first, last = min(per_hour), max(per_hour)
        result[gpu] = Window(
            sum(every) / len(every),
            min(every),
            max(every),
            min(per_hour[first]),
            min(per_hour[last]),
        )
    return result


def hourly_points(
    gpu: str, since: datetime, until: datetime, *, region: str = ""
) -> list[tuple[datetime, float]]:
    """(hour, cheapest price in USD) over all regions, or in `region` if given (forecasting,
    the portal's price history)."""
    rollups = PriceRollup.objects.filter(
        period="hour", gpu=gpu, starts_at__gte=since, starts_at__lt=until
    )
    if region:
        rollups = rollups.filter(region=region)
    rows = rollups.values("starts_at").annotate(low=Min("min_micros")).order_by("starts_at")
    return [(row["starts_at"], row["low"] / 1_000_000) for row in rows]
