"""`manage.py spot_backtest --series FILE.csv [--json]`: the price model vs the baselines.

FILE has the columns of spot/data/reference/gpu_price_timeseries.csv (timestamp, gpu, provider,
price_per_gpu_hour, ...). Each (gpu, provider) series is resampled hourly, split in half (train /
test) and forecast from every test hour 1 h, 6 h and 24 h ahead.
"""

import json
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from spot import forecast
from spot.history import read_tracker_rows


def load_series(path: Path) -> list[forecast.Series]:
    points: dict[tuple[str, str], list[tuple[datetime, float]]] = defaultdict(list)
    try:
        for row in read_tracker_rows(path):
            moment = datetime.fromisoformat(row["timestamp"].replace("Z", "+00:00"))
            points[(row["gpu"], row["provider"])].append((moment, float(row["price_per_gpu_hour"])))
    except (KeyError, ValueError) as error:
        raise CommandError(f"{path}: not a price series file ({error})") from error
    return [forecast.hourly(series) for series in points.values()]


class Command(BaseCommand):
    help = "Backtest the price forecast against no-change and seasonal-naive on a series file."

    def add_arguments(self, parser):
        parser.add_argument("--series", required=True, type=Path)
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, series: Path, json: bool, **options):
        if not series.is_file():
            raise CommandError(f"{series}: no such file")
        results = forecast.report(forecast.backtest(load_series(series)))
        if json:
            self.stdout.write(_dumps(results))
            return
        self.stdout.write(f"{'horizon':8} {'forecast':15} {'MAE $/h':>10} {'MAPE %':>8}")
        for horizon, result in results.items():
            for name in ("model", "no_change", "seasonal_naive"):
                errors = result[name]
                self.stdout.write(
                    f"{horizon:8} {name:15} {errors['mae']:10.4f} {errors['mape']:8.3f}"
                )
            self.stdout.write(f"{horizon:8} {'80% coverage':15} {result['coverage_80']:>19}")


def _dumps(value) -> str:
    return json.dumps(value)
