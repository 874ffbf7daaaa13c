"""Instances → spot: what the spot statistics learn from our own machines."""

from collections import defaultdict
from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from billing.models import UsageInterval
from instances.models import Instance
from spot import risk


def machine_hours(since: datetime, until: datetime) -> dict[str, float]:
    """Machine-hours our instances ran in [since, until), per GPU (from usage intervals)."""
    intervals = list(
        UsageInterval.objects.filter(kind=UsageInterval.Kind.GPU, started_at__lt=until)
        .filter(Q(ended_at__isnull=True) | Q(ended_at__gt=since))
        .values_list("subject_id", "started_at", "ended_at")
    )
    gpu_of = dict(
        Instance.objects.filter(id__in={subject for subject, *_ in intervals}).values_list(
            "id", "gpu"
        )
    )
    now = timezone.now()
    total: dict[str, float] = defaultdict(float)
    for subject, started_at, ended_at in intervals:
        start, end = max(started_at, since), min(ended_at or now, until)
        if end > start and subject in gpu_of:
            total[gpu_of[subject]] += (end - start).total_seconds() / 3600
    return total


def record_interruption(instance: Instance, at: datetime) -> None:
    """The provider took this instance's machine back: one observation for spot."""
    risk.record(
        instance.gpu,
        instance.region,
        instance.provider or "unknown",
        at,
        reference=instance.provider_id,
    )
