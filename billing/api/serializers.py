from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing import entitlements
from billing.models import (
    CheckoutSession,
    Invoice,
    LedgerEntry,
    Plan,
    Subscription,
    UsageInterval,
)
from billing.money import usd_text


class BalanceSerializer(serializers.Serializer):
    balance_micro_usd = serializers.IntegerField()
    balance_usd = serializers.CharField()
    currency = serializers.CharField()


class LedgerEntrySerializer(serializers.ModelSerializer):
    amount_usd = serializers.SerializerMethodField()

    class Meta:
        model = LedgerEntry
        fields = [
            "id",
            "created_at",
            "kind",
            "amount_micros",
            "amount_usd",
            "currency",
            "amount_minor",
            "fx_rate",
            "reference",
            "description",
        ]
        read_only_fields = fields

    def get_amount_usd(self, entry: LedgerEntry) -> str:
        return usd_text(entry.amount_micros)


class UsageDaySerializer(serializers.Serializer):
    day = serializers.DateField()
    subject_id = serializers.CharField(help_text="the instance id, or `storage`")
    kind = serializers.CharField()
    amount_micros = serializers.IntegerField(help_text="charged that day (positive)")
    amount_usd = serializers.CharField()


class PlanSerializer(serializers.ModelSerializer):
    class Meta:
        model = Plan
        fields = [
            "code",
            "name",
            "price_minor",
            "currency",
            "included_gpu_hours",
            "included_credit_micros",
            "has_standby",
            "has_auto_hibernate",
            "max_instances",
            "regions",
            "support_response_hours",
        ]
        read_only_fields = fields


class EntitlementsSerializer(serializers.Serializer):
    plan = serializers.CharField(help_text="the plan's code, or `pay_as_you_go`")
    is_paid = serializers.BooleanField()
    has_standby = serializers.BooleanField()
    has_auto_hibernate = serializers.BooleanField()
    max_instances = serializers.IntegerField(allow_null=True, help_text="null: no limit")
    regions = serializers.ListField(child=serializers.CharField(), help_text="empty: all")
    support_response_hours = serializers.IntegerField(allow_null=True)
    included_gpu_hours = serializers.IntegerField()
    included_credit_micros = serializers.IntegerField()


class SubscriptionSerializer(serializers.ModelSerializer):
    plan = PlanSerializer()
    is_paid = serializers.BooleanField(read_only=True)
    entitlements = serializers.SerializerMethodField()

    class Meta:
        model = Subscription
        fields = [
            "plan",
            "status",
            "is_paid",
            "trial_ends_at",
            "current_period_start",
            "current_period_end",
            "cancel_at_period_end",
            "entitlements",
        ]
        read_only_fields = fields

    @extend_schema_field(EntitlementsSerializer)
    def get_entitlements(self, subscription: Subscription) -> dict:
        return entitlements.of_subscription(subscription)


class SubscribeRequestSerializer(serializers.Serializer):
    plan = serializers.ChoiceField(choices=["starter", "pro"])
    method = serializers.ChoiceField(choices=["card"], default="card")


class PortalSerializer(serializers.Serializer):
    url = serializers.URLField()


class MissingUrlAsNullField(serializers.URLField):
    """A URL Stripe has not given (stored as ""): null in the API, which promises a URI."""

    def __init__(self, **kwargs):
        super().__init__(allow_null=True, read_only=True, **kwargs)

    def to_representation(self, value):
        return value or None


class InvoiceSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="stripe_invoice_id")
    hosted_invoice_url = MissingUrlAsNullField(help_text="Stripe's page for it; null until issued.")
    invoice_pdf_url = MissingUrlAsNullField(help_text="Its PDF; null until issued.")

    class Meta:
        model = Invoice
        fields = [
            "id",
            "number",
            "status",
            "currency",
            "amount_due_minor",
            "amount_paid_minor",
            "period_start",
            "period_end",
            "hosted_invoice_url",
            "invoice_pdf_url",
            "issued_at",
        ]
        read_only_fields = fields


class UsageIntervalSerializer(serializers.ModelSerializer):
    class Meta:
        model = UsageInterval
        fields = ["id", "kind", "subject_id", "price_micros_per_hour", "started_at", "ended_at"]


class BudgetSerializer(serializers.Serializer):
    monthly_limit_usd = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=1, allow_null=True, required=False
    )
    thresholds_percent = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=1000),
        min_length=1,
        max_length=10,
        required=False,
    )
    low_balance_usd = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=0, required=False
    )
    month_spent_usd = serializers.CharField(read_only=True)


class CheckoutRequestSerializer(serializers.Serializer):
    amount_usd = serializers.DecimalField(max_digits=9, decimal_places=2, min_value=1)
    method = serializers.ChoiceField(choices=["card", "pix", "boleto"], default="card")


class CheckoutSessionSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="stripe_session_id")
    credit_usd = serializers.SerializerMethodField()
    plan = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)

    class Meta:
        model = CheckoutSession
        fields = [
            "id",
            "url",
            "mode",
            "plan",
            "method",
            "status",
            "credit_usd",
            "currency",
            "amount_minor",
            "fx_rate",
            "created_at",
            "completed_at",
        ]
        read_only_fields = fields

    def get_credit_usd(self, session: CheckoutSession) -> str:
        return usd_text(session.credit_micros)
