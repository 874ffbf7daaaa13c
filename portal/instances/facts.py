"""What the instance pages show about instances and snapshots, read in a fixed number of queries
whatever their number: status labels, cost so far, connection, which actions apply."""

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Prefetch, Sum

from billing import metering
from billing.alerts import USAGE_KINDS
from billing.models import LedgerEntry, UsageInterval
from billing.money import micros_to_usd, usd_text
from instances.api.serializers import connection_info
from instances.models import Failover, Instance, Standby
from instances.transitions import TRANSITIONAL
from snapshots.models import Snapshot

Status = Instance.Status

# The labels are the models' (translated) choices: Instance, Snapshot and Failover Status.
STATUS_LABELS = dict(Status.choices)
SNAPSHOT_STATUS_LABELS = dict(Snapshot.Status.choices)
FAILOVER_STATUS_LABELS = dict(Failover.Status.choices)
# The state machine's statuses on the way to another: the card shows a spinner meanwhile.
MOVING = TRANSITIONAL
# Where users can reach the workspace (on the GPU, or on the standby during a failover).
REACHABLE = {Status.RUNNING, Status.ON_STANDBY}


def status_label(status: str) -> str:
    return str(STATUS_LABELS.get(status, status)) if status else ""


def cents_text(micros: int) -> str:
    """Money to the cent for reading: 1234567 → "1.23"."""
    return str(micros_to_usd(micros).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def instances_for_cards(tenant):
    """The tenant's instances with what a card needs in the same few queries: the serving
    standby (connection during a failover)."""
    serving = Standby.objects.filter(status=Standby.Status.SERVING)
    return Instance.objects.for_tenant(tenant).prefetch_related(
        Prefetch("standbys", queryset=serving)
    )


def cost_so_far_micros(tenant, instance_ids: list[str], now: datetime) -> dict[str, int]:
    """Usage charged per instance (GPU and standby, as /api/billing/usage sums the ledger) plus
    what its open usage intervals owe and the metering task has not posted yet. Two queries."""
    costs = dict.fromkeys(instance_ids, 0)
    if not instance_ids:
        return costs
    charged = (
        LedgerEntry.objects.for_tenant(tenant)
        .filter(kind__in=USAGE_KINDS, reference__in=instance_ids)
        .values("reference")
        .annotate(total=Sum("amount_micros"))
    )
    for row in charged:
        costs[row["reference"]] -= row["total"]
    open_intervals = UsageInterval.objects.for_tenant(tenant).filter(
        subject_id__in=instance_ids, ended_at__isnull=True
    )
    for interval in open_intervals:
        costs[interval.subject_id] += max(
            0, metering.due_micros(interval, now) - interval.posted_micros
        )
    return costs


@dataclass(frozen=True)
class Card:
    """One instance as the dashboard card and the detail page show it."""

    instance: Instance
    cost_micros: int

    @property
    def status_label(self) -> str:
        return str(STATUS_LABELS.get(self.instance.status, self.instance.status))

    @property
    def is_moving(self) -> bool:
        return self.instance.status in MOVING

    @property
    def region(self) -> str:
        return self.instance.region or self.instance.requested_region

    @property
    def hourly_usd(self) -> str | None:
        """What the customer pays per hour for the machine rented now (market price + margin)."""
        if self.instance.price_micros is None:
            return None
        return usd_text(metering.billed_price(self.instance.price_micros))

    @property
    def max_price_usd(self) -> str:
        return usd_text(self.instance.max_price_micros)

    @property
    def cost_usd(self) -> str:
        return cents_text(self.cost_micros)

    @property
    def connection(self) -> dict | None:
        if self.instance.status not in REACHABLE:
            return None
        return connection_info(self.instance)

    @property
    def can_hibernate(self) -> bool:
        return self.instance.status == Status.RUNNING

    @property
    def can_wake(self) -> bool:
        return self.instance.status == Status.HIBERNATED

    @property
    def can_delete(self) -> bool:
        return self.instance.status not in (Status.DELETING, Status.DELETED)

    @property
    def can_snapshot(self) -> bool:
        return self.instance.status == Status.RUNNING


def cards(tenant, instances: list[Instance], now: datetime) -> list[Card]:
    costs = cost_so_far_micros(tenant, [instance.pk for instance in instances], now)
    return [Card(instance, costs[instance.pk]) for instance in instances]


@dataclass(frozen=True)
class SnapshotRow:
    snapshot: Snapshot

    @property
    def status_label(self) -> str:
        return str(SNAPSHOT_STATUS_LABELS.get(self.snapshot.status, self.snapshot.status))

    @property
    def progress_percent(self) -> int | None:
        snapshot = self.snapshot
        if snapshot.status not in (Snapshot.Status.PENDING, Snapshot.Status.RUNNING):
            return None
        if not snapshot.bytes_total:
            return 0
        return min(100, snapshot.bytes_done * 100 // snapshot.bytes_total)

    @property
    def can_restore(self) -> bool:
        return self.snapshot.status == Snapshot.Status.COMPLETED

    @property
    def can_delete(self) -> bool:
        return self.snapshot.status in (Snapshot.Status.COMPLETED, Snapshot.Status.FAILED)
