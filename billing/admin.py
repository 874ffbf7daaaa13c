"""Staff: plans are editable; the ledger is read-only except for audited grants and refunds."""

import uuid
from decimal import Decimal

from django import forms
from django.contrib import admin

from accounts.models import AuditLog
from accounts.services import record_audit
from billing import ledger
from billing.models import (
    CardTrialClaim,
    Invoice,
    LedgerEntry,
    Plan,
    StorageMeter,
    Subscription,
    TrialClaim,
    UsageInterval,
)
from billing.money import usd_to_micros

STAFF_KINDS = [
    (LedgerEntry.Kind.ADMIN_GRANT, "Grant credit"),
    (LedgerEntry.Kind.REFUND, "Refund (credit back to the balance)"),
]


class CreditForm(forms.ModelForm):
    kind = forms.ChoiceField(choices=STAFF_KINDS)
    amount_usd = forms.DecimalField(min_value=Decimal("0.01"), max_digits=12, decimal_places=6)
    reason = forms.CharField(max_length=300, help_text="Required: shown in the ledger and audit.")

    class Meta:
        model = LedgerEntry
        fields = ["tenant", "kind", "amount_usd", "reason", "reference"]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "tenant", "kind", "amount_micros", "reference", "description"]
    list_filter = ["kind"]
    search_fields = ["tenant__name", "reference", "idempotency_key"]
    list_select_related = ["tenant"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = CreditForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["tenant", "kind", "amount_usd", "reason", "reference"]
        return [field.name for field in LedgerEntry._meta.fields]

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj) if obj else []

    def save_model(self, request, obj, form, change):
        """Post through the ledger (idempotent, append-only) and audit who and why."""
        data = form.cleaned_data
        entry, _ = ledger.post(
            data["tenant"],
            data["kind"],
            usd_to_micros(data["amount_usd"]),
            idempotency_key=f"staff:{uuid.uuid4()}",
            reference=data.get("reference") or "",
            description=f"{data['reason']} (by {request.user.email})",
        )
        action = (
            AuditLog.Action.CREDIT_GRANTED
            if data["kind"] == LedgerEntry.Kind.ADMIN_GRANT
            else AuditLog.Action.CREDIT_REFUNDED
        )
        record_audit(
            action,
            tenant=data["tenant"],
            actor=request.user,
            ip=request.META.get("REMOTE_ADDR"),
            target=f"ledger entry {entry.pk}",
            amount_micros=entry.amount_micros,
            reason=data["reason"],
        )
        for field in LedgerEntry._meta.concrete_fields:  # the admin logs and redirects to it
            setattr(obj, field.attname, getattr(entry, field.attname))

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = [
        "code",
        "name",
        "price_minor",
        "currency",
        "included_gpu_hours",
        "included_credit_micros",
        "is_public",
    ]


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = [
        "tenant",
        "plan",
        "status",
        "trial_ends_at",
        "current_period_end",
        "cancel_at_period_end",
    ]
    list_filter = ["status", "plan"]
    search_fields = ["tenant__name", "stripe_customer_id", "stripe_subscription_id"]


@admin.register(UsageInterval)
class UsageIntervalAdmin(admin.ModelAdmin):
    list_display = [
        "tenant",
        "kind",
        "subject_id",
        "price_micros_per_hour",
        "started_at",
        "ended_at",
        "posted_micros",
    ]
    list_filter = ["kind"]
    search_fields = ["subject_id", "tenant__name"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(TrialClaim)
class TrialClaimAdmin(admin.ModelAdmin):
    list_display = ["email", "tenant", "created_at"]
    search_fields = ["email"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Written by the Stripe webhook or the meters only; staff read."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    list_display = ["issued_at", "tenant", "number", "status", "amount_due_minor", "currency"]
    list_filter = ["status"]
    search_fields = ["tenant__name", "number", "stripe_invoice_id"]


@admin.register(CardTrialClaim)
class CardTrialClaimAdmin(ReadOnlyAdmin):
    list_display = ["fingerprint", "tenant", "created_at"]
    search_fields = ["fingerprint", "tenant__name"]


@admin.register(StorageMeter)
class StorageMeterAdmin(ReadOnlyAdmin):
    list_display = ["tenant", "stored_bytes", "changed_at", "posted_until", "posted_micros"]
    search_fields = ["tenant__name"]
