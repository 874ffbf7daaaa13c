"""Usage is billed by the second, exactly, while an instance runs."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from billing import ledger, metering
from billing.models import LedgerEntry, UsageInterval
from billing.tasks import post_usage
from instances.models import Instance
from instances.tests.factories import InstanceFactory
from instances.transitions import transition

pytestmark = pytest.mark.django_db
Status = Instance.Status
START = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
PRICE = 387_168  # micro-USD per hour, a simulated RTX 4090


def _usage(tenant) -> int:
    entries = LedgerEntry.objects.for_tenant(tenant).filter(kind="usage_gpu")
    return -sum(entries.values_list("amount_micros", flat=True))


def test_a_simulated_day_of_metering_equals_price_times_seconds_exactly(owner):
    interval = metering.open_interval(owner.tenant.pk, "gpu", "i1", PRICE, at=START)
    # The task runs at irregular moments, sometimes twice at once, sometimes late.
    moments = [START + timedelta(seconds=s) for s in (59, 60, 60, 61, 3599, 7200, 40000, 86399)]

    for moment in moments:
        metering.post_interval(interval.pk, now=moment)
    metering.close_interval("i1", "gpu", at=START + timedelta(days=1))
    metering.post_interval(interval.pk, now=START + timedelta(days=2))

    assert _usage(owner.tenant) == PRICE * 24


def test_an_odd_duration_is_floored_to_the_micro_dollar_once_not_per_post(owner):
    interval = metering.open_interval(owner.tenant.pk, "gpu", "i2", 1_000_001, at=START)

    for second in range(1, 8):
        metering.post_interval(interval.pk, now=START + timedelta(seconds=second))

    assert _usage(owner.tenant) == 1_000_001 * 7 // 3600


def test_opening_twice_keeps_one_interval(owner):
    first = metering.open_interval(owner.tenant.pk, "gpu", "i3", PRICE, at=START)
    second = metering.open_interval(owner.tenant.pk, "gpu", "i3", PRICE, at=START)

    assert first.pk == second.pk
    assert UsageInterval.objects.count() == 1


def test_running_opens_the_meter_and_hibernating_closes_it(owner):
    instance = InstanceFactory(tenant=owner.tenant, status=Status.PROVISIONING, price_micros=PRICE)

    with time_machine.travel(START, tick=False):
        transition(instance, Status.RUNNING)
    with time_machine.travel(START + timedelta(minutes=90), tick=False):
        transition(instance, Status.HIBERNATING)
        transition(instance, Status.HIBERNATED)
    with time_machine.travel(START + timedelta(hours=5), tick=False):
        post_usage()

    assert _usage(owner.tenant) == PRICE * 3 // 2
    interval = UsageInterval.objects.get(subject_id=instance.pk)
    assert interval.ended_at == START + timedelta(minutes=90)


def test_the_usage_api_sums_per_instance_and_day(owner):
    interval = metering.open_interval(owner.tenant.pk, "gpu", "iday", PRICE, at=START)
    with time_machine.travel(START + timedelta(hours=2), tick=False):
        metering.post_interval(interval.pk)

    rows = owner.client.get("/api/billing/usage").json()

    assert rows == [
        {
            "day": str((START + timedelta(hours=2)).date()),
            "subject_id": "iday",
            "kind": "usage_gpu",
            "amount_micros": PRICE * 2,
            "amount_usd": "0.774336",
        }
    ]


def test_a_balance_reaching_zero_hibernates_running_instances(
    owner, mailoutbox, django_capture_on_commit_callbacks
):
    ledger.post(owner.tenant, "adjustment", -78_900_000, idempotency_key="almost-all")
    instance = InstanceFactory(tenant=owner.tenant, status=Status.PROVISIONING, price_micros=PRICE)
    with time_machine.travel(START, tick=False):
        transition(instance, Status.RUNNING)

    with (
        time_machine.travel(START + timedelta(hours=1), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        exhausted = post_usage()

    assert exhausted == 1
    assert ledger.balance_micros(owner.tenant) == 100_000 - PRICE
    instance.refresh_from_db()
    assert (instance.status, instance.status_reason) == (Status.HIBERNATING, "credit exhausted")
    mail = next(m for m in mailoutbox if "hibernated" in m.subject)
    assert mail.to == [owner.user.email]
    assert instance.name in mail.body
