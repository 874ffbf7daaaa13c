"""Snapshots of instance workspaces, the tenant's repository they live in, and restores."""

import secrets

from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.models import Tenant, TenantOwnedQuerySet
from instances.models import AgentCommand, Instance


def new_snapshot_id() -> str:
    return "s" + secrets.token_hex(6)[:11]


class SnapshotRepository(models.Model):
    """One encrypted, deduplicated repository per tenant (snapshots/engine), and its size."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="+")
    location = models.CharField(max_length=500)  # a folder or s3://bucket/prefix
    stored_bytes = models.BigIntegerField(default=0)  # after dedup and compression: billed
    measured_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantOwnedQuerySet.as_manager()

    def __str__(self) -> str:
        return self.location


class Snapshot(models.Model):
    """A point-in-time copy of an instance's workspace, taken by its agent."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting for the agent")  # waiting for the agent to take the command
        RUNNING = "running", _("Taking")
        COMPLETED = "completed", _("Completed")
        FAILED = "failed", _("Failed")
        DELETING = "deleting", _("Deleting")
        DELETED = "deleted", _("Deleted")

    id = models.CharField(primary_key=True, max_length=16, default=new_snapshot_id, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="snapshots")
    instance = models.ForeignKey(
        Instance, on_delete=models.SET_NULL, null=True, blank=True, related_name="snapshots"
    )
    name = models.CharField(max_length=100)
    source_gpu = models.CharField(max_length=40)
    source_region = models.CharField(max_length=20, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    command = models.ForeignKey(
        AgentCommand, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    engine_snapshot_id = models.CharField(max_length=64, blank=True)
    bytes_done = models.BigIntegerField(default=0)
    bytes_total = models.BigIntegerField(default=0)
    files_done = models.BigIntegerField(default=0)
    files_total = models.BigIntegerField(default=0)
    eta_seconds = models.FloatField(null=True, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)  # the workspace, uncompressed
    added_bytes = models.BigIntegerField(null=True, blank=True)  # what the repository grew by
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "id"]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="snapshot_tenant_time")]

    def __str__(self) -> str:
        return f"{self.id} {self.name} ({self.status})"


class Restore(models.Model):
    """A snapshot restored into an instance's workspace once its agent is up."""

    class Status(models.TextChoices):
        WAITING = "waiting"  # the instance is not running yet
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    snapshot = models.ForeignKey(Snapshot, on_delete=models.PROTECT, related_name="restores")
    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="restores")
    engine_snapshot_id = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.WAITING)
    command = models.ForeignKey(
        AgentCommand, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    bytes_done = models.BigIntegerField(default=0)
    bytes_total = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "id"]

    def __str__(self) -> str:
        return f"{self.snapshot_id} → {self.instance_id} ({self.status})"
