"""A tenant's webhook endpoints and the outbox of deliveries to them."""

import secrets
import uuid

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from accounts.models import Tenant, TenantOwnedQuerySet

SECRET_PREFIX = "whsec_"
# Characters of the secret shown in lists, enough to tell two secrets apart.
SECRET_DISPLAY_CHARS = len(SECRET_PREFIX) + 6


def new_signing_secret() -> str:
    """`whsec_` + 32 random bytes, URL-safe base64."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


class WebhookEndpoint(models.Model):
    """A URL of the tenant's that receives the events it subscribes to, signed with `secret`."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    # Stored in plaintext because every delivery is signed with it (unlike API tokens, which
    # we only have to recognise); the API shows it in full only on create and rotate-secret.
    secret = models.CharField(max_length=80, default=new_signing_secret, editable=False)
    # Names from webhooks.events.EVENTS. A JSON list rather than a table: a tenant has few
    # endpoints and `emit` filters them in Python (SQLite, the embedded default, has no
    # JSON containment lookup).
    events = models.JSONField(default=list)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(condition=~Q(url=""), name="webhook_endpoint_url_not_empty"),
            models.CheckConstraint(
                condition=Q(secret__startswith=SECRET_PREFIX),
                name="webhook_endpoint_secret_prefixed",
            ),
        ]

    def __str__(self) -> str:
        return self.url

    @property
    def secret_prefix(self) -> str:
        return self.secret[:SECRET_DISPLAY_CHARS]

    def is_subscribed_to(self, event: str) -> bool:
        return event in self.events


class WebhookDelivery(models.Model):
    """One event for one endpoint: the outbox row, its attempts and their last outcome."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed (gave up)")

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.CharField(max_length=64)
    # The same for every endpoint, every retry and every redelivery of one event, so a
    # receiver can drop duplicates.
    event_id = models.UUIDField(default=uuid.uuid4, editable=False)
    # The whole JSON body ({"id", "type", "created_at", "tenant", "data"}), fixed at emit time.
    payload = models.JSONField(encoder=DjangoJSONEncoder)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempt_count = models.PositiveSmallIntegerField(default=0)
    # When a worker may next claim it; while an attempt runs, the end of that attempt's lease.
    # Null once it succeeded or failed.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    response_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    response_body_excerpt = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            # The sweep: WHERE status = 'pending' AND next_attempt_at <= now ORDER BY it.
            models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due"),
            # An endpoint's delivery log, newest first.
            models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_log"),
            # /metrics, at every scrape: the deliveries that ended in the last hours, by status
            # (last_attempt_at >= T, GROUP BY status), index-only (dumont/metrics.py).
            models.Index(
                fields=["last_attempt_at", "status"],
                condition=~Q(status="pending"),
                name="webhook_delivery_finished",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status="pending", next_attempt_at__isnull=False)
                | (~Q(status="pending") & Q(next_attempt_at__isnull=True)),
                name="webhook_delivery_pending_has_next_attempt",
            ),
            models.CheckConstraint(
                condition=~Q(status="succeeded") | Q(delivered_at__isnull=False),
                name="webhook_delivery_succeeded_has_delivered_at",
            ),
            # Only an attempt ends a delivery, and every attempt starts with a claim that sets
            # last_attempt_at: the metrics count a finished delivery by it.
            models.CheckConstraint(
                condition=Q(status="pending") | Q(last_attempt_at__isnull=False),
                name="webhook_delivery_finished_has_last_attempt",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.endpoint_id} ({self.status})"
