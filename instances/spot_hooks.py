"""Instances → spot: what the spot statistics learn from our own machines."""

from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from billing.models import UsageInterval
from instances.models import Instance
from spot import risk


def machine_hours(gpu: str, since: datetime, until: datetime) -> float:
    """Machine-hours our instances of this GPU ran in [since, until) (from usage intervals)."""
    instance_ids = Instance.objects.filter(gpu=gpu).values_list("id", flat=True)
    intervals = UsageInterval.objects.filter(
        kind=UsageInterval.Kind.GPU, subject_id__in=instance_ids, started_at__lt=until
    ).filter(Q(ended_at__isnull=True) | Q(ended_at__gt=since))
    now = timezone.now()
    total = 0.0
    for started_at, ended_at in intervals.values_list("started_at", "ended_at"):
        start, end = max(started_at, since), min(ended_at or now, until)
        if end > start:
            total += (end - start).total_seconds() / 3600
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
