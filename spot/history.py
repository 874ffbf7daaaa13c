"""Market history: import the shared price series, store monitor samples, roll them up."""

import csv
import statistics
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

from django.db.models import Avg, Count, Max, Min
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from spot.catalog import REFERENCE_DIR, gpu_of_series
from spot.market import MarketOffer
from spot.models import MarketSample, PriceRollup

# spot/data/reference/gpu_price_timeseries.csv: tugot17/gpu-price-tracker (MIT), one row per
# snapshot x GPU series x marketplace provider, every ~30 minutes.
TRACKER_SERIES = REFERENCE_DIR / "gpu_price_timeseries.csv"
RETENTION_DAYS = 366
TRUNC = {PriceRollup.Period.HOUR: TruncHour, PriceRollup.Period.DAY: TruncDay}


def _micros(usd: float) -> int:
    return round(usd * 1_000_000)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (what the tracker uses)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


def read_tracker_rows(path: Path) -> Iterable[dict]:
    with path.open(newline="") as handle:
        yield from csv.DictReader(handle)


def import_tracker(path: Path = TRACKER_SERIES, *, end_at: datetime | None = None) -> int:
    """Load a price-tracker CSV as samples (one per snapshot and catalog GPU); returns rows.

    With `end_at`, every timestamp is shifted by the same amount so the history ends then (the
    demo of `make run` wants recent history; prices and their rhythm are unchanged).
    """
    groups: dict[tuple[str, str], list[tuple[float, int]]] = defaultdict(list)
    for row in read_tracker_rows(path):
        gpu = gpu_of_series(row["gpu"])
        if gpu is None:
            continue
        groups[(row["timestamp"], gpu.name)].append(
            (float(row["price_per_gpu_hour"]), int(row["offer_count"] or 0))
        )
    stamps = {stamp: datetime.fromisoformat(stamp.replace("Z", "+00:00")) for stamp, _ in groups}
    shift = end_at - max(stamps.values()) if end_at and stamps else timedelta(0)
    samples = []
    for (stamp, gpu_name), quotes in groups.items():
        prices = [price for price, _ in quotes]
        samples.append(
            MarketSample(
                gpu=gpu_name,
                region="",
                source="tracker",
                taken_at=stamps[stamp] + shift,
                min_micros=_micros(min(prices)),
                median_micros=_micros(statistics.median(prices)),
                p90_micros=_micros(percentile(prices, 0.9)),
                available=sum(count for _, count in quotes),
            )
        )
    MarketSample.objects.bulk_create(samples, batch_size=2000, ignore_conflicts=True)
    if samples:
        first = min(sample.taken_at for sample in samples)
        last = max(sample.taken_at for sample in samples)
        roll_up(first, last + timedelta(days=1))
    return len(samples)


def record_offers(offers: list[MarketOffer], at: datetime) -> list[MarketSample]:
    """One sample per GPU and region from the provider's offers (prices per GPU-hour)."""
    groups: dict[tuple[str, str, str], list[MarketOffer]] = defaultdict(list)
    for offer in offers:
        groups[(offer.provider, offer.gpu, offer.region)].append(offer)
    samples = []
    for (provider, gpu, region), group in groups.items():
        listed = [offer for offer in group if offer.available > 0] or group
        prices = [offer.price_micros_per_gpu_hour for offer in listed]
        samples.append(
            MarketSample(
                gpu=gpu,
                region=region,
                source=provider,
                taken_at=at,
                min_micros=min(prices),
                median_micros=round(statistics.median(prices)),
                p90_micros=round(percentile(prices, 0.9)),
                available=sum(offer.available for offer in group),
            )
        )
    MarketSample.objects.bulk_create(samples, ignore_conflicts=True)
    return samples


def roll_up(since: datetime, until: datetime) -> int:
    """(Re)compute hourly and daily rollups of the samples between `since` and `until`."""
    written = 0
    for period, trunc in TRUNC.items():
        start = since.replace(minute=0, second=0, microsecond=0)
        if period == PriceRollup.Period.DAY:
            start = start.replace(hour=0)
        rows = (
            MarketSample.objects.filter(taken_at__gte=start, taken_at__lt=until)
            .annotate(bucket=trunc("taken_at"))
            .values("gpu", "region", "bucket")
            .annotate(
                low=Min("min_micros"),
                middle=Avg("median_micros"),
                high=Max("p90_micros"),
                stock=Avg("available"),
                count=Count("id"),
            )
        )
        rollups = [
            PriceRollup(
                period=period,
                gpu=row["gpu"],
                region=row["region"],
                starts_at=row["bucket"],
                min_micros=row["low"],
                median_micros=round(row["middle"]),
                p90_micros=row["high"],
                available=round(row["stock"]),
                samples=row["count"],
            )
            for row in rows
        ]
        PriceRollup.objects.bulk_create(
            rollups,
            batch_size=2000,
            update_conflicts=True,
            unique_fields=["period", "gpu", "region", "starts_at"],
            update_fields=["min_micros", "median_micros", "p90_micros", "available", "samples"],
        )
        written += len(rollups)
    return written


def prune(now: datetime | None = None) -> int:
    """Forget samples and rollups older than a year (the seeds' 12-month history)."""
    cutoff = (now or timezone.now()) - timedelta(days=RETENTION_DAYS)
    deleted, _ = MarketSample.objects.filter(taken_at__lt=cutoff).delete()
    rolled, _ = PriceRollup.objects.filter(starts_at__lt=cutoff).delete()
    return deleted + rolled
