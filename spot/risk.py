"""Interruption risk: observed interruptions, smoothed toward a prior from AWS's Spot Advisor.

Prior: spot/data/reference/aws_spot_advisor.csv (2025-06-28 snapshot, Linux). The mean bucket of
the matching accelerator, read as the share of capacity reclaimed per month (bucket midpoints),
becomes a hazard per machine-hour. GPUs AWS does not rent get the middle bucket (12.5 %/month).
Posterior hazard = (interruptions + PRIOR_HOURS x prior hazard) / (machine-hours + PRIOR_HOURS):
with few observations the prior speaks; with many, the data does. Every answer says how many
interruptions and machine-hours it rests on.
"""

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from spot.models import Interruption
from spot.prior import prior_hazard_per_hour

PRIOR_HOURS = 720.0  # the prior weighs as much as a month of one machine's observations

# (since, until) -> machine-hours per GPU name that ran between the two times.
ExposureSource = Callable[[datetime, datetime], dict[str, float]]
_exposure_sources: list[ExposureSource] = []


def register_exposure_source(source: ExposureSource) -> None:
    """instances registers how many machine-hours of each GPU ran between two times."""
    if source not in _exposure_sources:
        _exposure_sources.append(source)


def exposure_hours(since: datetime, until: datetime) -> dict[str, float]:
    total: dict[str, float] = defaultdict(float)
    for source in _exposure_sources:
        for gpu, hours in source(since, until).items():
            total[gpu] += hours
    return total


@dataclass(frozen=True)
class Risk:
    gpu: str
    hazard_per_hour: float
    interruptions: int
    machine_hours: float
    prior_hazard_per_hour: float
    mean_duration_minutes: float | None


def risks(gpus: list[str], since: datetime, until: datetime) -> dict[str, Risk]:
    """Each GPU's interruption hazard over [since, until) (two queries for any number)."""
    observed = Interruption.objects.filter(
        gpu__in=gpus, occurred_at__gte=since, occurred_at__lt=until
    ).values_list("gpu", "duration_seconds")
    counts: dict[str, int] = defaultdict(int)
    durations: dict[str, list[int]] = defaultdict(list)
    for gpu, duration in observed:
        counts[gpu] += 1
        if duration is not None:
            durations[gpu].append(duration)
    exposure = exposure_hours(since, until)
    result = {}
    for gpu in gpus:
        hours, prior = exposure.get(gpu, 0.0), prior_hazard_per_hour(gpu)
        hazard = (counts[gpu] + PRIOR_HOURS * prior) / (hours + PRIOR_HOURS)
        seen = durations[gpu]
        mean_minutes = sum(seen) / len(seen) / 60 if seen else None
        result[gpu] = Risk(gpu, hazard, counts[gpu], round(hours, 1), prior, mean_minutes)
    return result


def risk(gpu: str, since: datetime, until: datetime) -> Risk:
    """The GPU's interruption hazard over [since, until)."""
    return risks([gpu], since, until)[gpu]


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
