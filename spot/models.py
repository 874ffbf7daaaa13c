"""Market samples and their rollups, and spot interruptions observed."""

from django.db import models

from accounts.models import Tenant, TenantOwnedQuerySet


class MarketSample(models.Model):
    """What the market offered for one GPU in one region at one moment (micro-USD per GPU-hour).

    Written every 5 minutes by the spot monitor from the active provider, and by `spot_import`
    from the shared price history (region "" there: the tracker does not say where).
    """

    gpu = models.CharField(max_length=40)
    region = models.CharField(max_length=20, blank=True)
    source = models.CharField(max_length=40)  # "sim", "vast", "tracker:<provider>"
    taken_at = models.DateTimeField()
    min_micros = models.BigIntegerField()
    median_micros = models.BigIntegerField()
    p90_micros = models.BigIntegerField()
    available = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["gpu", "region", "source", "taken_at"], name="sample_unique"
            )
        ]
        indexes = [models.Index(fields=["taken_at"], name="sample_time")]

    def __str__(self) -> str:
        return f"{self.gpu} {self.region or 'any'} {self.taken_at:%Y-%m-%d %H:%M}"


class PriceRollup(models.Model):
    """Samples of one GPU and region aggregated per hour or per day; endpoints read these."""

    class Period(models.TextChoices):
        HOUR = "hour"
        DAY = "day"

    period = models.CharField(max_length=4, choices=Period.choices)
    gpu = models.CharField(max_length=40)
    region = models.CharField(max_length=20, blank=True)
    starts_at = models.DateTimeField()
    min_micros = models.BigIntegerField()
    median_micros = models.BigIntegerField()  # mean of the samples' medians
    p90_micros = models.BigIntegerField()  # highest p90 of the samples
    available = models.PositiveIntegerField(default=0)  # mean available
    samples = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["period", "gpu", "region", "starts_at"], name="rollup_unique"
            )
        ]
        indexes = [
            models.Index(fields=["period", "gpu", "starts_at"], name="rollup_gpu_time"),
            models.Index(fields=["period", "starts_at"], name="rollup_time"),
        ]

    def __str__(self) -> str:
        return f"{self.period} {self.gpu} {self.region or 'any'} {self.starts_at:%Y-%m-%d %H:%M}"


class Interruption(models.Model):
    """A spot machine taken back by the market: from our instances or the simulator."""

    gpu = models.CharField(max_length=40)
    region = models.CharField(max_length=20, blank=True)
    provider = models.CharField(max_length=20)
    occurred_at = models.DateTimeField()
    # How long service was down (interruption → serving again), when known.
    duration_seconds = models.PositiveIntegerField(null=True, blank=True)
    reference = models.CharField(max_length=100, blank=True)  # machine or instance id

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "reference"],
                condition=~models.Q(reference=""),
                name="interruption_once_per_machine",
            )
        ]
        indexes = [models.Index(fields=["gpu", "occurred_at"], name="interruption_gpu_time")]

    def __str__(self) -> str:
        return f"{self.gpu} {self.region} {self.occurred_at:%Y-%m-%d %H:%M}"


class PriceAlert(models.Model):
    """A tenant's watch on a GPU's price: fires once each time the price crosses the line."""

    class Direction(models.TextChoices):
        BELOW = "below"
        ABOVE = "above"

    class State(models.TextChoices):
        ARMED = "armed"  # the price is on the quiet side of the line: a crossing fires
        TRIGGERED = "triggered"  # crossed; re-arms when the price goes back

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="price_alerts")
    gpu = models.CharField(max_length=40)
    region = models.CharField(max_length=20, blank=True)  # "" = the cheapest region
    direction = models.CharField(max_length=5, choices=Direction.choices)
    threshold_micros = models.BigIntegerField()
    cooldown_minutes = models.PositiveIntegerField(default=60)
    is_active = models.BooleanField(default=True)
    state = models.CharField(max_length=9, choices=State.choices, default=State.ARMED)
    last_price_micros = models.BigIntegerField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_fired_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(threshold_micros__gt=0), name="price_alert_threshold_positive"
            )
        ]
        indexes = [models.Index(fields=["is_active", "gpu"], name="price_alert_active_gpu")]

    def __str__(self) -> str:
        return f"{self.gpu} {self.direction} {self.threshold_micros / 1_000_000:.4f}"

    def is_crossed_by(self, price_micros: int) -> bool:
        if self.direction == self.Direction.BELOW:
            return price_micros < self.threshold_micros
        return price_micros > self.threshold_micros


class PriceAlertFiring(models.Model):
    """One crossing of a price alert: notified, or held back by the alert's cooldown."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    alert = models.ForeignKey(PriceAlert, on_delete=models.CASCADE, related_name="firings")
    price_micros = models.BigIntegerField()
    occurred_at = models.DateTimeField()
    is_notified = models.BooleanField()

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["-occurred_at", "-id"]

    def __str__(self) -> str:
        return f"{self.alert_id} {self.occurred_at:%Y-%m-%d %H:%M}"


class PriceMark(models.Model):
    """The cheapest price of a GPU that `price.changed` last announced (the next compares)."""

    gpu = models.CharField(max_length=40, unique=True)
    price_micros = models.BigIntegerField()
    announced_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.gpu} {self.price_micros}"
