"""Market samples and their rollups, and spot interruptions observed."""

from django.db import models


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
