"""Market data for the portal's tests: a real slice of the shared H100 price history ending
now, and live offers in two regions as the spot monitor records them."""

import csv
from datetime import timedelta

import pytest
from django.utils import timezone

from spot import history
from spot.market import MarketOffer


@pytest.fixture
def market(db, tmp_path):
    """The last 5 days of the tracker's H100 series ending 10 minutes ago, and live offers in
    US-East (7 machines) and EU-West (2, the cheapest); returns the time it was recorded."""
    rows = list(csv.DictReader(history.TRACKER_SERIES.open(newline="")))
    kept = [row for row in rows if row["gpu"] == "H100_80GB_SXM5"]
    last = max(row["timestamp"] for row in kept)
    cutoff = (
        (timezone.datetime.fromisoformat(last.replace("Z", "+00:00")) - timedelta(days=5))
        .isoformat()
        .replace("+00:00", "Z")
    )
    path = tmp_path / "h100.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=rows[0].keys())
        writer.writeheader()
        writer.writerows(row for row in kept if row["timestamp"] >= cutoff)
    now = timezone.now()
    history.import_tracker(path, end_at=now - timedelta(minutes=10))
    offers = [
        MarketOffer("sim", "H100", "US-East", 1, 2_100_000, 3),
        MarketOffer("sim", "H100", "US-East", 1, 2_300_000, 4),
        MarketOffer("sim", "H100", "EU-West", 1, 1_900_000, 2),
    ]
    history.record_offers(offers, now - timedelta(minutes=1))
    history.roll_up(now - timedelta(hours=1), now + timedelta(minutes=1))
    return now
