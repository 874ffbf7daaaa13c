"""Price alerts of the caller's organisation: /api/spot/alerts (members manage their tenant's)."""

from decimal import Decimal

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers

from accounts.tenancy import TenantScopedViewSet
from spot.api.params import GpuField
from spot.catalog import REGIONS, find_region
from spot.models import PriceAlert, PriceAlertFiring

MAX_ALERTS_PER_TENANT = 100
RECENT_FIRINGS = 10
# What re-arms an alert when edited: it now watches a different line.
WATCH_FIELDS = ("gpu", "region", "direction", "threshold_micros")


def _usd(micros: int | None) -> Decimal | None:
    return None if micros is None else Decimal(micros) / 1_000_000


class RegionField(serializers.CharField):
    default_error_messages = {"unknown_region": f"Unknown region; one of {', '.join(REGIONS)}."}

    def to_internal_value(self, data):
        text = super().to_internal_value(data)
        if not text:
            return ""
        region = find_region(text)
        if region is None:
            self.fail("unknown_region")
        return region


class PriceAlertFiringSerializer(serializers.ModelSerializer):
    price_usd = serializers.SerializerMethodField()

    class Meta:
        model = PriceAlertFiring
        fields = ["occurred_at", "price_usd", "is_notified"]

    def get_price_usd(self, firing: PriceAlertFiring) -> Decimal:
        return _usd(firing.price_micros)


class PriceAlertSerializer(serializers.ModelSerializer):
    gpu = GpuField(help_text="Any spelling of a catalog GPU: `RTX4090`, `rtx 4090`.")
    region = RegionField(required=False, allow_blank=True, help_text="Empty: the cheapest region.")
    price_usd = serializers.DecimalField(
        max_digits=10,
        decimal_places=4,
        min_value=Decimal("0.0001"),
        max_value=Decimal("1000"),
        coerce_to_string=False,
        source="threshold_usd",
        help_text="The line, in USD per GPU-hour.",
    )
    cooldown_minutes = serializers.IntegerField(min_value=0, max_value=10080, default=60)
    last_price_usd = serializers.SerializerMethodField()
    recent_firings = serializers.SerializerMethodField()

    class Meta:
        model = PriceAlert
        fields = [
            "id",
            "gpu",
            "region",
            "direction",
            "price_usd",
            "cooldown_minutes",
            "is_active",
            "state",
            "last_price_usd",
            "last_checked_at",
            "last_fired_at",
            "recent_firings",
            "created_at",
        ]
        read_only_fields = ["state", "last_checked_at", "last_fired_at", "created_at"]

    def to_representation(self, alert: PriceAlert) -> dict:
        alert.threshold_usd = _usd(alert.threshold_micros)
        return super().to_representation(alert)

    def get_last_price_usd(self, alert: PriceAlert) -> Decimal | None:
        return _usd(alert.last_price_micros)

    def get_recent_firings(self, alert: PriceAlert) -> list[dict]:
        firings = alert.firings.all()[:RECENT_FIRINGS]
        return PriceAlertFiringSerializer(firings, many=True).data

    def _fields_of(self, validated: dict) -> dict:
        fields = dict(validated)
        if "gpu" in fields:
            fields["gpu"] = fields["gpu"].name
        if "threshold_usd" in fields:
            fields["threshold_micros"] = int(fields.pop("threshold_usd") * 1_000_000)
        return fields

    def create(self, validated: dict) -> PriceAlert:
        tenant = self.context["request"].auth.tenant
        if PriceAlert.objects.for_tenant(tenant).count() >= MAX_ALERTS_PER_TENANT:
            raise serializers.ValidationError(
                {"non_field_errors": [f"At most {MAX_ALERTS_PER_TENANT} alerts per organisation."]},
                code="too_many_alerts",
            )
        return PriceAlert.objects.create(tenant=tenant, **self._fields_of(validated))

    def update(self, alert: PriceAlert, validated: dict) -> PriceAlert:
        fields = self._fields_of(validated)
        if any(name in fields and fields[name] != getattr(alert, name) for name in WATCH_FIELDS):
            fields["state"] = PriceAlert.State.ARMED
        for name, value in fields.items():
            setattr(alert, name, value)
        alert.save()
        return alert


@extend_schema_view(
    list=extend_schema(summary="Price alerts of the organisation"),
    create=extend_schema(summary="Watch a GPU's price: fires once per crossing"),
)
@extend_schema(tags=["spot"])
class PriceAlertViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    TenantScopedViewSet,
):
    """Alerts on spot prices, evaluated after every market sample (e-mail + `price.alert`)."""

    queryset = PriceAlert.objects.prefetch_related("firings")
    serializer_class = PriceAlertSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
