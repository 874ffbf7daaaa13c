"""Standby VMs are billed by the second like GPUs; stored bytes by the byte-second, exactly."""

import random
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from billing import metering, storage
from billing.models import LedgerEntry
from billing.tasks import post_usage

pytestmark = pytest.mark.django_db
START = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
GB = 10**9
MONTH_SECONDS = 30 * 86400


def _charged(tenant, kind: str) -> int:
    entries = LedgerEntry.objects.for_tenant(tenant).filter(kind=kind)
    return -sum(entries.values_list("amount_micros", flat=True))


def test_a_standby_day_costs_the_standby_price_times_seconds_exactly(owner, settings):
    settings.STANDBY_PRICE_MICROS_PER_HOUR = 30_000
    interval = metering.open_standby_interval(owner.tenant.pk, "i-standby", at=START)

    for second in (1, 59, 59, 3601, 20_000, 25_212):
        metering.post_interval(interval.pk, now=START + timedelta(seconds=second))
    metering.close_standby_interval("i-standby", at=START + timedelta(hours=7, seconds=13))
    metering.post_interval(interval.pk, now=START + timedelta(days=3))

    assert _charged(owner.tenant, "usage_standby") == 30_000 * (7 * 3600 + 13) // 3600
    assert interval.kind == "standby"


def test_opening_a_standby_twice_keeps_one_interval_and_closing_twice_posts_once(owner):
    first = metering.open_standby_interval(owner.tenant.pk, "i-twice", at=START)
    second = metering.open_standby_interval(owner.tenant.pk, "i-twice", at=START)

    metering.close_standby_interval("i-twice", at=START + timedelta(hours=2))
    again = metering.close_standby_interval("i-twice", at=START + timedelta(hours=3))

    assert first.pk == second.pk
    assert again is None
    assert _charged(owner.tenant, "usage_standby") == 60_000


def _changes() -> list[tuple[int, int]]:
    """(second of the day, stored bytes from then on): a day of snapshots and deletions."""
    return [
        (0, 0),
        (600, 7 * GB + 123_456_789),
        (3_601, 250 * GB),
        (20_000, 249 * GB + 1),
        (43_210, 1_000 * GB + 987_654_321),
        (70_000, 3),
        (80_001, 42 * GB),
    ]


def _expected_for_the_day(rate: int) -> int:
    changes = [*_changes(), (86_400, 0)]
    byte_microseconds = sum(
        bytes_ * (changes[index + 1][0] - second) * 10**6
        for index, (second, bytes_) in enumerate(changes[:-1])
    )
    return byte_microseconds * rate // (GB * MONTH_SECONDS * 10**6)


@pytest.mark.parametrize("runs", [1, 24, 500])
def test_a_day_of_stored_bytes_posts_the_exact_integral_however_often_posting_runs(
    owner, settings, runs
):
    settings.STORAGE_PRICE_MICROS_PER_GB_MONTH = 5_000
    tenant_id = owner.tenant.pk
    moments = sorted(random.Random(runs).randrange(1, 86_400) for _ in range(runs))
    events = [(second, "report", bytes_) for second, bytes_ in _changes()]
    events += [(second, "post", None) for second in moments]

    for second, what, bytes_ in sorted(events, key=lambda event: (event[0], event[1] != "report")):
        at = START + timedelta(seconds=second)
        if what == "report":
            storage.report_stored_bytes(tenant_id, bytes_, at=at)
            storage.report_stored_bytes(tenant_id, bytes_, at=at)  # a repeated report
        else:
            storage.post_meter(tenant_id, now=at)
            storage.post_meter(tenant_id, now=at - timedelta(seconds=30))  # a late run
    storage.report_stored_bytes(tenant_id, 0, at=START + timedelta(days=1))
    storage.post_meter(tenant_id, now=START + timedelta(days=1))
    storage.post_meter(tenant_id, now=START + timedelta(days=9))

    assert _charged(owner.tenant, "usage_storage") == _expected_for_the_day(5_000)
    assert _expected_for_the_day(5_000) > 0


def test_a_gb_for_a_30_day_month_costs_the_rate(owner, settings):
    settings.STORAGE_PRICE_MICROS_PER_GB_MONTH = 5_000
    storage.report_stored_bytes(owner.tenant.pk, GB, at=START)

    with time_machine.travel(START + timedelta(days=30), tick=False):
        post_usage()
        post_usage()

    assert _charged(owner.tenant, "usage_storage") == 5_000


def test_storage_shows_in_the_usage_api(owner):
    storage.report_stored_bytes(owner.tenant.pk, 100 * GB, at=START)
    with time_machine.travel(START + timedelta(days=3), tick=False):
        post_usage()

    rows = owner.client.get("/api/billing/usage").json()

    assert rows[0]["subject_id"] == "storage"
    assert rows[0]["kind"] == "usage_storage"
    assert rows[0]["amount_micros"] == 50_000


def test_negative_stored_bytes_are_refused(owner):
    with pytest.raises(ValueError):
        storage.report_stored_bytes(owner.tenant.pk, -1)
