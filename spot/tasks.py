"""Celery entry points of spot: the market monitor and its upkeep."""

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from spot import alerts, history
from spot.market import current_offers


@shared_task
def monitor_market() -> int:
    """Sample the active provider's offers (every 5 minutes), refresh this hour's rollups, then
    evaluate price alerts and announce price changes against the new prices."""
    now = timezone.now()
    samples = history.record_offers(current_offers(), now)
    history.roll_up(now - timedelta(hours=1), now + timedelta(minutes=1))
    alerts.evaluate_alerts(now)
    alerts.announce_price_changes(sorted({sample.gpu for sample in samples}), now)
    return len(samples)


@shared_task
def prune_history() -> int:
    """Drop samples and rollups older than the 12 months kept."""
    return history.prune()
