"""Storage billing: stored bytes (after dedup) x time x STORAGE_PRICE_MICROS_PER_GB_MONTH.

GB = 10^9 bytes and a month = 30 days (2,592,000 s). The snapshots app reports a tenant's stored
bytes whenever they change (`report_stored_bytes`); the meter keeps the exact integral of bytes
over time in byte-microseconds. The amount due at T is integral(0..T) x price / (GB x month),
floored to the micro-dollar once on the cumulative total, and each post's ledger key is the
cumulative amount it brings the tenant to (`storage:<tenant>:<due>`). So however often, late or
concurrently `post_storage` runs, the ledger holds exactly floor(bytes x seconds x rate).
"""

from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import ledger
from billing.metering import to_microseconds
from billing.models import LedgerEntry, StorageMeter

BYTES_PER_GB = 10**9
MICROSECONDS_PER_MONTH = 30 * 86400 * 10**6


def _locked_meter(tenant_id: int, at: datetime) -> StorageMeter:
    """The tenant's meter, locked; created (storing nothing since `at`) on first use."""
    meter = StorageMeter.objects.select_for_update().filter(tenant_id=tenant_id).first()
    if meter is not None:
        return meter
    try:
        with transaction.atomic():
            StorageMeter.objects.create(
                tenant_id=tenant_id,
                changed_at=at,
                posted_until=at,
                price_micros_per_gb_month=settings.STORAGE_PRICE_MICROS_PER_GB_MONTH,
            )
    except IntegrityError:
        pass  # another report created it first; lock theirs
    return StorageMeter.objects.select_for_update().get(tenant_id=tenant_id)


def _integral_until(meter: StorageMeter, until: datetime) -> int:
    elapsed = max(0, to_microseconds(until - meter.changed_at))
    return int(meter.byte_microseconds) + meter.stored_bytes * elapsed


def due_micros(meter: StorageMeter, until: datetime) -> int:
    """What the meter owes from its start to `until`, floored to the micro-dollar."""
    integral = _integral_until(meter, until)
    return integral * meter.price_micros_per_gb_month // (BYTES_PER_GB * MICROSECONDS_PER_MONTH)


def report_stored_bytes(tenant_id: int, stored_bytes: int, at: datetime | None = None) -> None:
    """The tenant now stores `stored_bytes` (after dedup), since `at` (default: now).

    Called by snapshots whenever the figure changes; repeating a report is harmless. A report
    older than the previous one is applied at the previous one's time (history is never
    rewritten), so reports should come in order.
    """
    if stored_bytes < 0:
        raise ValueError(f"stored_bytes must be >= 0, not {stored_bytes}")
    at = at or timezone.now()
    with transaction.atomic():
        meter = _locked_meter(tenant_id, at)
        at = max(at, meter.changed_at)
        meter.byte_microseconds = Decimal(_integral_until(meter, at))
        meter.changed_at = at
        meter.stored_bytes = stored_bytes
        meter.save(update_fields=["byte_microseconds", "changed_at", "stored_bytes"])


def post_meter(tenant_id: int, *, now: datetime | None = None) -> int:
    """Post what the tenant's storage owes up to now; returns the micro-dollars posted."""
    now = now or timezone.now()
    with transaction.atomic():
        meter = StorageMeter.objects.select_for_update().filter(tenant_id=tenant_id).first()
        if meter is None:
            return 0
        # A post never goes back in time: a run that started before another finished waits for
        # the lock above and then finds nothing more due.
        until = max(now, meter.posted_until)
        due = due_micros(meter, until)
        amount = due - meter.posted_micros
        if amount <= 0:
            return 0
        ledger.post(
            tenant_id,
            LedgerEntry.Kind.USAGE_STORAGE,
            -amount,
            idempotency_key=f"storage:{tenant_id}:{due}",
            reference="storage",
            description=f"storage, {meter.stored_bytes} bytes now",
        )
        meter.posted_micros = due
        meter.posted_until = until
        meter.save(update_fields=["posted_micros", "posted_until"])
    return amount


def post_storage(now: datetime | None = None) -> set[int]:
    """Post every tenant's storage up to now; returns the tenants that were charged."""
    now = now or timezone.now()
    tenant_ids = StorageMeter.objects.values_list("tenant_id", flat=True)
    return {tenant_id for tenant_id in tenant_ids if post_meter(tenant_id, now=now)}
