import csv
from datetime import timedelta

import pytest
from django.utils import timezone

from spot import history
from spot.tasks import monitor_market


@pytest.fixture
def history_csv(tmp_path):
    """The last 5 days of the shared tracker series for A100 and H100 (a real slice)."""
    rows = list(csv.DictReader(history.TRACKER_SERIES.open(newline="")))
    last = max(row["timestamp"] for row in rows)
    cutoff = (
        (timezone.datetime.fromisoformat(last.replace("Z", "+00:00")) - timedelta(days=5))
        .isoformat()
        .replace("+00:00", "Z")
    )
    kept = [
        row
        for row in rows
        if row["timestamp"] >= cutoff and row["gpu"] in ("A100_80GB_PCIe", "H100_80GB_SXM5")
    ]
    path = tmp_path / "slice.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=rows[0].keys())
        writer.writeheader()
        writer.writerows(kept)
    return path


@pytest.fixture
def market(db, history_csv, simulator):
    """Imported history ending now, plus one live sample of the simulated market."""
    history.import_tracker(history_csv, end_at=timezone.now() - timedelta(minutes=10))
    monitor_market()
    return simulator
