"""`manage.py spot_import [--series FILE]`: load a price-tracker CSV as market history."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from spot import history
from spot.models import MarketSample


class Command(BaseCommand):
    help = "Import GPU price history (format of spot/data/reference/gpu_price_timeseries.csv)."

    def add_arguments(self, parser):
        parser.add_argument("--series", type=Path, default=history.TRACKER_SERIES)
        parser.add_argument(
            "--align-to-now",
            action="store_true",
            help="shift the history so it ends now (the demo of `make run`)",
        )
        parser.add_argument(
            "--if-empty", action="store_true", help="do nothing when history is already there"
        )

    def handle(self, *args, series: Path, align_to_now: bool, if_empty: bool, **options):
        if if_empty and MarketSample.objects.filter(source="tracker").exists():
            return
        if not series.is_file():
            raise CommandError(f"{series}: no such file")
        try:
            count = history.import_tracker(series, end_at=timezone.now() if align_to_now else None)
        except (KeyError, ValueError) as error:
            raise CommandError(f"{series}: not a price series file ({error})") from error
        self.stdout.write(f"imported {count} samples from {series}")
