"""Instances (a customer's GPU machine), their transitions, and the commands queued for agents."""

import secrets
import string

from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.models import SshKey, Tenant, TenantOwnedQuerySet

ID_ALPHABET = string.ascii_lowercase + string.digits
ID_LENGTH = 11


def new_instance_id() -> str:
    """`i` + 11 random characters: unguessable, and a valid DNS label for port and DDNS names."""
    return "i" + "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


class Region(models.TextChoices):
    US_EAST = "US-East"
    US_WEST = "US-West"
    EU_WEST = "EU-West"
    ASIA_PACIFIC = "Asia-Pacific"


class InstanceQuerySet(TenantOwnedQuerySet):
    def live(self):
        return self.exclude(status=Instance.Status.DELETED)


class Instance(models.Model):
    """A customer's GPU machine. Only `instances.transitions.transition` writes `status`."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        PROVISIONING = "provisioning", _("Provisioning")
        RUNNING = "running", _("Running")
        HIBERNATING = "hibernating", _("Hibernating")
        HIBERNATED = "hibernated", _("Hibernated")
        WAKING = "waking", _("Waking")
        FAILING_OVER = "failing_over", _("Failing over")
        ON_STANDBY = "on_standby", _("On standby")
        RECOVERING = "recovering", _("Recovering")
        DELETING = "deleting", _("Deleting")
        DELETED = "deleted", _("Deleted")
        ERROR = "error", _("Error")

    id = models.CharField(primary_key=True, max_length=16, default=new_instance_id, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="instances")
    name = models.CharField(max_length=100)
    gpu = models.CharField(max_length=40)  # catalog name, spot.catalog.Gpu.name
    gpu_count = models.PositiveSmallIntegerField(default=1)
    # What the customer asked for: None = best available region.
    requested_region = models.CharField(max_length=20, choices=Region.choices, blank=True)
    region = models.CharField(max_length=20, choices=Region.choices, blank=True)
    max_price_micros = models.BigIntegerField()  # per hour, whole machine
    price_micros = models.BigIntegerField(null=True, blank=True)  # per hour, what we pay now
    provider = models.CharField(max_length=20, blank=True)
    provider_id = models.CharField(max_length=100, blank=True)
    offer_id = models.CharField(max_length=100, blank=True)
    # Sent with every create call: a retried or duplicated provision task never starts two
    # machines, because the provider returns the machine it made for this key.
    provision_key = models.CharField(max_length=64, blank=True)
    provision_attempts = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    status_reason = models.CharField(max_length=300, blank=True)
    status_changed_at = models.DateTimeField()
    disk_gb = models.PositiveIntegerField(default=50)
    image = models.CharField(max_length=200, default="pytorch/pytorch:latest")
    ssh_keys = models.ManyToManyField(SshKey, blank=True, related_name="instances")
    ssh_host = models.CharField(max_length=255, blank=True)
    ssh_port = models.PositiveIntegerField(null=True, blank=True)
    public_ip = models.GenericIPAddressField(null=True, blank=True)
    # The agent's credential: SHA-256 of `dia_...`, issued at provisioning, only for this instance.
    agent_token_hash = models.CharField(max_length=64, blank=True, db_index=True)
    # Heartbeat ingest writes only these three, so the idle sweep reads them without history.
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    last_busy_at = models.DateTimeField(null=True, blank=True)
    gpu_utilization_percent = models.FloatField(null=True, blank=True)
    # Set when a command is queued, so a heartbeat looks for commands only when there are some.
    has_queued_commands = models.BooleanField(default=False)
    # Continuous workspace sync, as the agent reports it: the newest synced snapshot (engine id)
    # is what failover and hibernation restore from.
    last_sync_at = models.DateTimeField(null=True, blank=True)
    last_sync_snapshot_id = models.CharField(max_length=64, blank=True)
    sync_lag_seconds = models.FloatField(null=True, blank=True)
    # True while users are served by the standby (the connection points at it).
    is_on_standby = models.BooleanField(default=False)
    # A new machine (wake after release, failover) restores this sync before it is `running`.
    needs_restore = models.BooleanField(default=False)
    restore_snapshot_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    running_since = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = InstanceQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "id"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="instance_tenant_time"),
            # reconcile: "which instances sit in a transitional status since before T".
            models.Index(fields=["status", "status_changed_at"], name="instance_status_time"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(gpu_count__gte=1), name="instance_gpu_count"),
            models.CheckConstraint(
                condition=models.Q(max_price_micros__gt=0), name="instance_max_price_positive"
            ),
            models.UniqueConstraint(
                fields=["provider", "provider_id"],
                condition=~models.Q(provider_id=""),
                name="instance_provider_machine_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.id}, {self.gpu}, {self.status})"


class InstanceEvent(models.Model):
    """One transition of an instance: who moved it, from where to where, and why."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(max_length=20, choices=Instance.Status.choices, blank=True)
    to_status = models.CharField(max_length=20, choices=Instance.Status.choices)
    reason = models.CharField(max_length=300, blank=True)
    actor = models.CharField(max_length=254)  # "user:ada@example.com", "system", "admin:..."
    created_at = models.DateTimeField()

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["instance", "created_at"], name="event_instance_time"),
            # /metrics, at every scrape: provisioning outcomes and durations of the last hours
            # (created_at >= T, GROUP BY to_status; to_status = running, joined to the instance),
            # index-only over the few events out of provisioning (dumont/metrics.py).
            models.Index(
                fields=["created_at", "to_status", "instance"],
                condition=models.Q(from_status=Instance.Status.PROVISIONING),
                name="event_provisioning_exit",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.instance_id}: {self.from_status or '∅'} → {self.to_status}"


class StandbyQuerySet(TenantOwnedQuerySet):
    def current(self):
        """Not lost or deleted: at most one per instance (one_live_standby_per_instance)."""
        return self.exclude(status__in=Standby.ENDED)


class Standby(models.Model):
    """The warm CPU standby of an instance: a small VM whose agent keeps restoring the
    instance's newest sync, so it can serve the workspace seconds after the GPU is lost."""

    class Status(models.TextChoices):
        CREATING = "creating"  # asked of the provider; its agent has not reported yet
        FOLLOWING = "following"  # up, restoring each new sync
        SERVING = "serving"  # the instance's GPU is lost: users work here
        STOPPED = "stopped"  # the instance hibernates
        LOST = "lost"  # its VM is gone: a new one is made, in the next region
        DELETED = "deleted"

    ENDED = (Status.LOST, Status.DELETED)

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="standbys")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.CREATING)
    region = models.CharField(max_length=20, choices=Region.choices)
    provider = models.CharField(max_length=20)
    provider_id = models.CharField(max_length=100, blank=True)
    provision_key = models.CharField(max_length=64)
    agent_token_hash = models.CharField(max_length=64, blank=True, db_index=True)
    price_micros = models.BigIntegerField(default=0)
    ssh_host = models.CharField(max_length=255, blank=True)
    ssh_port = models.PositiveIntegerField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    followed_snapshot_id = models.CharField(max_length=64, blank=True)
    followed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = StandbyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["instance"],
                condition=~models.Q(status__in=["lost", "deleted"]),
                name="one_live_standby_per_instance",
            )
        ]

    def __str__(self) -> str:
        return f"standby of {self.instance_id} in {self.region} ({self.status})"


class AgentCommand(models.Model):
    """A command for an instance's agent, handed out in a heartbeat response and acknowledged."""

    class State(models.TextChoices):
        QUEUED = "queued"
        SENT = "sent"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="commands")
    # For the instance's standby agent rather than its GPU machine's.
    standby = models.ForeignKey(
        Standby, on_delete=models.CASCADE, null=True, blank=True, related_name="commands"
    )
    kind = models.CharField(max_length=40)
    args = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=12, choices=State.choices, default=State.QUEUED)
    detail = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(
                fields=["instance"],
                condition=models.Q(state="queued"),
                name="command_queued",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} for {self.instance_id} ({self.state})"


class Failover(models.Model):
    """One interruption of an instance's GPU and how it came back, with what it cost the user.

    RPO: the age of the newest good sync when the machine was lost (work after it is gone).
    RTO: interruption → the standby serving, and interruption → a GPU serving again.
    """

    class Status(models.TextChoices):
        IN_PROGRESS = "in_progress", _("In progress")
        COMPLETED = "completed", _("Completed")
        FAILED = "failed", _("Failed")

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="failovers")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.IN_PROGRESS)
    reason = models.CharField(max_length=300)
    interrupted_at = models.DateTimeField()
    last_sync_at = models.DateTimeField(null=True, blank=True)
    restored_snapshot_id = models.CharField(max_length=64, blank=True)
    rpo_seconds = models.FloatField(null=True, blank=True)  # None: never synced
    standby_serving_at = models.DateTimeField(null=True, blank=True)
    rto_standby_seconds = models.FloatField(null=True, blank=True)
    gpu_serving_at = models.DateTimeField(null=True, blank=True)
    rto_gpu_seconds = models.FloatField(null=True, blank=True)
    failed_provider_id = models.CharField(max_length=100, blank=True)
    failed_offer_id = models.CharField(max_length=100, blank=True)
    failed_region = models.CharField(max_length=20, blank=True)
    new_provider_id = models.CharField(max_length=100, blank=True)
    new_region = models.CharField(max_length=20, blank=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["-interrupted_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["instance"],
                condition=models.Q(status="in_progress"),
                name="one_failover_in_progress",
            )
        ]

    def __str__(self) -> str:
        return f"{self.instance_id} at {self.interrupted_at:%Y-%m-%d %H:%M:%S}"
