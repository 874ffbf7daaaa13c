"""A tenant's support tickets and the conversation on each."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Tenant, TenantOwnedQuerySet


class TicketQuerySet(TenantOwnedQuerySet):
    def overdue(self, now=None):
        """Waiting for a first answer past the plan's response time."""
        return self.filter(
            status=Ticket.Status.OPEN,
            first_responded_at__isnull=True,
            first_response_due_at__lt=now or timezone.now(),
        )


class Ticket(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", _("Open")  # waiting for support
        ANSWERED = "answered", _("Answered")  # waiting for the customer
        CLOSED = "closed", _("Closed")

    class Priority(models.TextChoices):
        LOW = "low", _("Low")
        NORMAL = "normal", _("Normal")
        HIGH = "high", _("High")
        URGENT = "urgent", _("Urgent")

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="tickets")
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    subject = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.NORMAL)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    # From the plan's support response time when the ticket was opened; null when the tenant's
    # plan promises none (pay-as-you-go: best effort).
    first_response_due_at = models.DateTimeField(null=True, blank=True)
    first_responded_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    objects = TicketQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The customer's list, newest first.
            models.Index(fields=["tenant", "-created_at"], name="ticket_tenant_time"),
            # Staff's overdue filter: open tickets by due time.
            models.Index(fields=["status", "first_response_due_at"], name="ticket_status_due"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="closed") | Q(closed_at__isnull=False),
                name="ticket_closed_has_closed_at",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.subject}"

    @property
    def is_overdue(self) -> bool:
        return (
            self.status == self.Status.OPEN
            and self.first_responded_at is None
            and self.first_response_due_at is not None
            and self.first_response_due_at < timezone.now()
        )

    @property
    def is_closed(self) -> bool:
        return self.status == self.Status.CLOSED


class TicketMessage(models.Model):
    """One message of a ticket's conversation, by the customer or by support staff."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text: the conversation still names its authors after an account is deleted.
    author_email = models.CharField(max_length=254, blank=True)
    body = models.TextField(max_length=20_000)
    is_staff = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"message {self.pk} on ticket {self.ticket_id}"
