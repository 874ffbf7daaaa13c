"""Usage metering: intervals of billable time, posted to the ledger exactly.

The amount due for an interval at time T is price x (T - start), computed from the start every
time in integer micro-seconds and floored to the micro-dollar, and the ledger key of each post
is the cumulative amount it brings the interval to. So posting every minute, once a day, twice
concurrently or again after a crash always sums to exactly price x seconds.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import ledger
from billing.models import LedgerEntry, UsageInterval

MICROSECONDS_PER_HOUR = 3600 * 10**6
KIND_OF_ENTRY = {
    UsageInterval.Kind.GPU: LedgerEntry.Kind.USAGE_GPU,
    UsageInterval.Kind.STANDBY: LedgerEntry.Kind.USAGE_STANDBY,
}


def billed_price(machine_price_micros_per_hour: int) -> int:
    """What the customer pays per hour for a machine: its market price plus our margin."""
    return machine_price_micros_per_hour * (100 + settings.BILLING_GPU_MARGIN_PERCENT) // 100


def to_microseconds(delta: timedelta) -> int:
    """A timedelta in whole micro-seconds, exactly (no float seconds)."""
    return (delta.days * 86400 + delta.seconds) * 10**6 + delta.microseconds


def due_micros(interval: UsageInterval, until: datetime) -> int:
    """price x elapsed, floored to the micro-dollar, from the interval's start to `until`."""
    elapsed = max(0, to_microseconds(until - interval.started_at))
    return interval.price_micros_per_hour * elapsed // MICROSECONDS_PER_HOUR


def open_interval(
    tenant_id: int,
    kind: str,
    subject_id: str,
    price_micros_per_hour: int,
    *,
    at: datetime,
    description: str = "",
) -> UsageInterval:
    """Start billing `subject_id`; an interval already open for it is returned unchanged."""
    try:
        with transaction.atomic():
            return UsageInterval.objects.create(
                tenant_id=tenant_id,
                kind=kind,
                subject_id=subject_id,
                description=description[:200],
                price_micros_per_hour=price_micros_per_hour,
                started_at=at,
                posted_until=at,
            )
    except IntegrityError:
        return UsageInterval.objects.get(subject_id=subject_id, kind=kind, ended_at__isnull=True)


def close_interval(subject_id: str, kind: str, *, at: datetime) -> UsageInterval | None:
    """Stop billing `subject_id` at `at` and post what is still due; None if nothing was open."""
    with transaction.atomic():
        interval = (
            UsageInterval.objects.select_for_update()
            .filter(subject_id=subject_id, kind=kind, ended_at__isnull=True)
            .first()
        )
        if interval is None:
            return None
        interval.ended_at = max(at, interval.started_at)
        interval.save(update_fields=["ended_at"])
        post_interval(interval.pk, now=at)
    return interval


def post_interval(interval_id: int, *, now: datetime | None = None) -> int:
    """Post what the interval owes up to now (or its end); returns the micro-dollars posted."""
    now = now or timezone.now()
    with transaction.atomic():
        interval = UsageInterval.objects.select_for_update().get(pk=interval_id)
        until = min(now, interval.ended_at) if interval.ended_at else now
        due = due_micros(interval, until)
        amount = due - interval.posted_micros
        if amount <= 0:
            return 0
        ledger.post(
            interval.tenant_id,
            KIND_OF_ENTRY[interval.kind],
            -amount,
            idempotency_key=f"usage:{interval.pk}:{due}",
            reference=interval.subject_id,
            description=interval.description,
        )
        interval.posted_micros = due
        interval.posted_until = until
        interval.save(update_fields=["posted_micros", "posted_until"])
    return amount


def post_open_intervals(now: datetime | None = None) -> set[int]:
    """Post every open interval up to now; returns the tenants that were charged."""
    now = now or timezone.now()
    charged = set()
    for interval in UsageInterval.objects.filter(ended_at__isnull=True).only("id", "tenant_id"):
        if post_interval(interval.pk, now=now):
            charged.add(interval.tenant_id)
    return charged


def open_standby_interval(
    tenant_id: int,
    subject_id: str,
    *,
    at: datetime | None = None,
    price_micros_per_hour: int | None = None,
    description: str = "",
) -> UsageInterval:
    """Start billing a standby VM (`subject_id`: the instance it serves) at the standby price.

    Repeating it while the standby is open is a no-op; the price defaults to
    STANDBY_PRICE_MICROS_PER_HOUR and is fixed for the interval.
    """
    price = settings.STANDBY_PRICE_MICROS_PER_HOUR
    return open_interval(
        tenant_id,
        UsageInterval.Kind.STANDBY,
        str(subject_id),
        price if price_micros_per_hour is None else price_micros_per_hour,
        at=at or timezone.now(),
        description=description or "CPU standby",
    )


def close_standby_interval(subject_id: str, *, at: datetime | None = None) -> UsageInterval | None:
    """Stop billing a standby VM and post what it still owes; None if none was open."""
    return close_interval(str(subject_id), UsageInterval.Kind.STANDBY, at=at or timezone.now())
