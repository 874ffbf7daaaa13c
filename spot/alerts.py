"""Price alerts and price-change announcements, evaluated after every market sample.

An alert fires once per crossing: when the price moves to the alerting side of its line while
the alert is armed. It re-arms only when the price goes back, so a price that stays low does not
fire again every cycle. A crossing within `cooldown_minutes` of the last notification is recorded
but not sent (a price flapping around the line would otherwise mail every five minutes).
"""

from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from accounts.mail import mail_owners
from dumont.live import push_after_commit
from spot import prices
from spot.models import PriceAlert, PriceAlertFiring, PriceMark
from webhooks.models import WebhookEndpoint
from webhooks.services import emit

PRICE_ALERT = "price.alert"
PRICE_CHANGED = "price.changed"


def evaluate_alerts(now: datetime) -> list[PriceAlertFiring]:
    """Check every active alert against the current price; returns the crossings recorded."""
    watched: dict[tuple[str, str], list[int]] = defaultdict(list)
    for alert_id, gpu, region in PriceAlert.objects.filter(is_active=True).values_list(
        "id", "gpu", "region"
    ):
        watched[(gpu, region)].append(alert_id)
    firings = []
    for (gpu, region), alert_ids in watched.items():
        price = prices.current_micros(gpu, now, region=region)
        if price is None:
            continue
        for alert_id in alert_ids:
            firing = _check(alert_id, price, now)
            if firing:
                firings.append(firing)
    return firings


def _check(alert_id: int, price_micros: int, now: datetime) -> PriceAlertFiring | None:
    # The row lock makes two overlapping monitor runs agree on one crossing.
    with transaction.atomic():
        alert = PriceAlert.objects.select_for_update().filter(pk=alert_id, is_active=True).first()
        if alert is None:
            return None
        alert.last_price_micros = price_micros
        alert.last_checked_at = now
        fields = ["last_price_micros", "last_checked_at", "updated_at"]
        firing = None
        is_crossed = alert.is_crossed_by(price_micros)
        if is_crossed and alert.state == PriceAlert.State.ARMED:
            cooldown = timedelta(minutes=alert.cooldown_minutes)
            is_cooling = alert.last_fired_at is not None and now - alert.last_fired_at < cooldown
            firing = PriceAlertFiring.objects.create(
                tenant_id=alert.tenant_id,
                alert=alert,
                price_micros=price_micros,
                occurred_at=now,
                is_notified=not is_cooling,
            )
            alert.state = PriceAlert.State.TRIGGERED
            fields.append("state")
            if not is_cooling:
                alert.last_fired_at = now
                fields.append("last_fired_at")
                _notify(alert, price_micros, now)
        elif not is_crossed and alert.state == PriceAlert.State.TRIGGERED:
            alert.state = PriceAlert.State.ARMED
            fields.append("state")
        alert.save(update_fields=fields)
    return firing


def alert_payload(alert: PriceAlert, price_micros: int, now: datetime) -> dict:
    return {
        "alert_id": alert.pk,
        "gpu": alert.gpu,
        "region": alert.region or None,
        "direction": alert.direction,
        "threshold_usd": prices.usd(alert.threshold_micros),
        "price_usd": prices.usd(price_micros),
        "occurred_at": now.isoformat(),
    }


def _notify(alert: PriceAlert, price_micros: int, now: datetime) -> None:
    data = alert_payload(alert, price_micros, now)
    emit(alert.tenant_id, PRICE_ALERT, data)  # in this transaction: no crossing, no delivery
    where = f" in {alert.region}" if alert.region else ""
    subject = (
        f"Dumont Cloud: {alert.gpu}{where} is ${data['price_usd']:.4f}/h, "
        f"{alert.direction} your ${data['threshold_usd']:.4f}"
    )
    body = (
        f"The spot price of {alert.gpu}{where} is now ${data['price_usd']:.4f} per GPU-hour, "
        f"{alert.direction} the ${data['threshold_usd']:.4f} of your alert #{alert.pk}. "
        "It fires again after the price goes back across the line."
    )
    tenant_id = alert.tenant_id
    transaction.on_commit(lambda: mail_owners(tenant_id, subject, body))
    push_after_commit(tenant_id, PRICE_ALERT, data)


def announce_price_changes(gpus: list[str], now: datetime) -> list[str]:
    """Emit `price.changed` to subscribed tenants for GPUs whose price moved enough."""
    subscribers = {
        endpoint.tenant_id
        for endpoint in WebhookEndpoint.objects.filter(is_active=True)
        if endpoint.is_subscribed_to(PRICE_CHANGED)
    }
    changed = []
    for gpu in gpus:
        price = prices.current_micros(gpu, now)
        if price is None:
            continue
        with transaction.atomic():
            mark, created = PriceMark.objects.select_for_update().get_or_create(
                gpu=gpu, defaults={"price_micros": price, "announced_at": now}
            )
            if created or mark.price_micros == price:
                continue
            change_percent = (price - mark.price_micros) * 100 / mark.price_micros
            if abs(change_percent) < settings.SPOT_PRICE_CHANGE_PERCENT:
                continue
            data = {
                "gpu": gpu,
                "previous_usd": prices.usd(mark.price_micros),
                "price_usd": prices.usd(price),
                "change_percent": round(change_percent, 2),
                "previous_at": mark.announced_at.isoformat(),
                "occurred_at": now.isoformat(),
            }
            for tenant_id in sorted(subscribers):
                emit(tenant_id, PRICE_CHANGED, data)
            mark.price_micros, mark.announced_at = price, now
            mark.save(update_fields=["price_micros", "announced_at"])
            changed.append(gpu)
    return changed
