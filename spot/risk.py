"""Interruption risk: observed interruptions, smoothed toward a prior from AWS's Spot Advisor.

Prior: spot/data/reference/aws_spot_advisor.csv (2025-06-28 snapshot, Linux). The mean bucket of
the matching accelerator, read as the share of capacity reclaimed per month (bucket midpoints),
becomes a hazard per machine-hour. GPUs AWS does not rent get the middle bucket (12.5 %/month).
Posterior hazard = (interruptions + PRIOR_HOURS x prior hazard) / (machine-hours + PRIOR_HOURS):
with few observations the prior speaks; with many, the data does. Every answer says how many
interruptions and machine-hours it rests on.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from spot.models import Interruption
from spot.prior import prior_hazard_per_hour

PRIOR_HOURS = 720.0  # the prior weighs as much as a month of one machine's observations

ExposureSource = Callable[[str, datetime, datetime], float]
_exposure_sources: list[ExposureSource] = []


def register_exposure_source(source: ExposureSource) -> None:
    """instances registers how many machine-hours of a GPU ran between two times."""
    if source not in _exposure_sources:
        _exposure_sources.append(source)


def exposure_hours(gpu: str, since: datetime, until: datetime) -> float:
    return sum(source(gpu, since, until) for source in _exposure_sources)


@dataclass(frozen=True)
class Risk:
    gpu: str
    hazard_per_hour: float
    interruptions: int
    machine_hours: float
    prior_hazard_per_hour: float
    mean_duration_minutes: float | None


def risk(gpu: str, since: datetime, until: datetime) -> Risk:
    """The GPU's interruption hazard over [since, until)."""
    observed = Interruption.objects.filter(gpu=gpu, occurred_at__gte=since, occurred_at__lt=until)
    count = observed.count()
    durations = [d for d in observed.values_list("duration_seconds", flat=True) if d is not None]
    hours = exposure_hours(gpu, since, until)
    prior = prior_hazard_per_hour(gpu)
    hazard = (count + PRIOR_HOURS * prior) / (hours + PRIOR_HOURS)
    mean_minutes = sum(durations) / len(durations) / 60 if durations else None
    return Risk(gpu, hazard, count, round(hours, 1), prior, mean_minutes)


def record(
    gpu: str,
    region: str,
    provider: str,
    occurred_at: datetime,
    *,
    reference: str = "",
    duration_seconds: int | None = None,
) -> None:
    """Record an interruption; with a machine reference, at most once per machine."""
    values = {"gpu": gpu, "region": region, "occurred_at": occurred_at}
    if reference:
        Interruption.objects.get_or_create(
            provider=provider,
            reference=reference,
            defaults={**values, "duration_seconds": duration_seconds},
        )
    else:
        Interruption.objects.create(provider=provider, duration_seconds=duration_seconds, **values)
