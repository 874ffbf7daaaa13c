"""The catalog of events a customer's webhook endpoint can subscribe to."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Event(models.TextChoices):
    INSTANCE_CREATED = "instance.created", _("Instance created")
    INSTANCE_RUNNING = "instance.running", _("Instance running")
    INSTANCE_HIBERNATED = "instance.hibernated", _("Instance hibernated")
    INSTANCE_DELETED = "instance.deleted", _("Instance deleted")
    INSTANCE_FAILOVER_TRIGGERED = "instance.failover_triggered", _("Instance failover triggered")
    SNAPSHOT_COMPLETED = "snapshot.completed", _("Snapshot completed")
    SNAPSHOT_FAILED = "snapshot.failed", _("Snapshot failed")
    SNAPSHOT_RESTORED = "snapshot.restored", _("Snapshot restored into an instance")
    BALANCE_LOW = "balance.low", _("Balance low")
    BUDGET_THRESHOLD = "budget.threshold", _("Monthly budget threshold reached")
    PRICE_ALERT = "price.alert", _("Price alert")
    PRICE_CHANGED = "price.changed", _("Price changed")


# Every name an endpoint may subscribe to and `emit` accepts.
EVENTS: tuple[str, ...] = tuple(Event.values)

# The test event of POST /api/webhooks/{id}/ping: sent to that one endpoint whatever it
# subscribes to, and never emitted by the platform.
PING = "ping"
