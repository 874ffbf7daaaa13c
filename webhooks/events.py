"""The catalog of events a customer's webhook endpoint can subscribe to."""

from django.db import models


class Event(models.TextChoices):
    INSTANCE_CREATED = "instance.created", "Instance created"
    INSTANCE_RUNNING = "instance.running", "Instance running"
    INSTANCE_HIBERNATED = "instance.hibernated", "Instance hibernated"
    INSTANCE_DELETED = "instance.deleted", "Instance deleted"
    INSTANCE_FAILOVER_TRIGGERED = "instance.failover_triggered", "Instance failover triggered"
    SNAPSHOT_COMPLETED = "snapshot.completed", "Snapshot completed"
    SNAPSHOT_FAILED = "snapshot.failed", "Snapshot failed"
    SNAPSHOT_RESTORED = "snapshot.restored", "Snapshot restored into an instance"
    BALANCE_LOW = "balance.low", "Balance low"
    BUDGET_THRESHOLD = "budget.threshold", "Monthly budget threshold reached"
    PRICE_ALERT = "price.alert", "Price alert"
    PRICE_CHANGED = "price.changed", "Price changed"


# Every name an endpoint may subscribe to and `emit` accepts.
EVENTS: tuple[str, ...] = tuple(Event.values)

# The test event of POST /api/webhooks/{id}/ping: sent to that one endpoint whatever it
# subscribes to, and never emitted by the platform.
PING = "ping"
