"""Price alerts fire once per crossing (e-mail + `price.alert`); price.changed announces moves."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from spot.alerts import announce_price_changes, evaluate_alerts
from spot.models import MarketSample, PriceAlert
from spot.tasks import monitor_market
from webhooks.models import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db


def _quote(gpu: str, region: str, usd: float, at) -> None:
    micros = round(usd * 1_000_000)
    MarketSample.objects.create(
        gpu=gpu,
        region=region,
        source="test",
        taken_at=at,
        min_micros=micros,
        median_micros=micros,
        p90_micros=micros,
        available=3,
    )


def _subscribe(account, *events: str) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(
        tenant=account.tenant, url="https://hooks.example.com/in", events=list(events)
    )


def _alert(account, **fields) -> dict:
    body = {"gpu": "RTX4090", "direction": "below", "price_usd": "0.30", **fields}
    response = account.client.post("/api/spot/alerts", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def _deliveries(account, event: str) -> list[dict]:
    rows = WebhookDelivery.objects.for_tenant(account.tenant).filter(event=event)
    return [row.payload["data"] for row in rows.order_by("created_at")]


def _cycle(gpu: str, region: str, usd: float, minutes: int, capture) -> None:
    """One monitor cycle at a price, `minutes` from now, with after-commit effects run."""
    at = timezone.now() + timedelta(minutes=minutes)
    _quote(gpu, region, usd, at)
    with capture(execute=True):
        evaluate_alerts(at)


def test_an_alert_already_crossed_fires_once_and_stays_quiet_while_the_price_stays(
    owner, django_capture_on_commit_callbacks
):
    _subscribe(owner, "price.alert")
    alert = _alert(owner, price_usd="0.30", region="us-east")

    for minutes in (0, 5, 10):
        _cycle("RTX 4090", "US-East", 0.25, minutes, django_capture_on_commit_callbacks)

    (sent,) = _deliveries(owner, "price.alert")
    assert sent["gpu"] == "RTX 4090" and sent["region"] == "US-East"
    assert sent["price_usd"] == 0.25 and sent["threshold_usd"] == 0.3
    assert len(mail.outbox) == 1 and owner.user.email in mail.outbox[0].to
    assert "RTX 4090" in mail.outbox[0].subject
    detail = owner.client.get(f"/api/spot/alerts/{alert['id']}").json()
    assert detail["state"] == "triggered" and detail["last_price_usd"] == 0.25
    assert [firing["is_notified"] for firing in detail["recent_firings"]] == [True]


def test_an_alert_rearms_when_the_price_goes_back_and_fires_on_the_next_crossing(
    owner, django_capture_on_commit_callbacks
):
    _subscribe(owner, "price.alert")
    _alert(owner, price_usd="0.30", cooldown_minutes=0)

    for minutes, usd in [(0, 0.35), (5, 0.29), (10, 0.28), (15, 0.31), (20, 0.27)]:
        _cycle("RTX 4090", "EU-West", usd, minutes, django_capture_on_commit_callbacks)

    assert [sent["price_usd"] for sent in _deliveries(owner, "price.alert")] == [0.29, 0.27]
    assert len(mail.outbox) == 2


def test_a_crossing_within_the_cooldown_is_recorded_but_not_sent(
    owner, django_capture_on_commit_callbacks
):
    _subscribe(owner, "price.alert")
    alert = _alert(owner, direction="above", price_usd="0.50", cooldown_minutes=60)

    for minutes, usd in [(0, 0.55), (5, 0.45), (10, 0.56), (70, 0.40), (75, 0.60)]:
        _cycle("RTX 4090", "US-West", usd, minutes, django_capture_on_commit_callbacks)

    assert [sent["price_usd"] for sent in _deliveries(owner, "price.alert")] == [0.55, 0.6]
    firings = owner.client.get(f"/api/spot/alerts/{alert['id']}").json()["recent_firings"]
    assert [(f["price_usd"], f["is_notified"]) for f in firings] == [
        (0.6, True),
        (0.56, False),
        (0.55, True),
    ]


def test_an_alert_on_one_region_ignores_cheaper_regions(owner, django_capture_on_commit_callbacks):
    _alert(owner, price_usd="0.30", region="Asia-Pacific")

    _cycle("RTX 4090", "US-East", 0.10, 0, django_capture_on_commit_callbacks)

    assert mail.outbox == []
    assert PriceAlert.objects.get().state == "armed"


def test_paused_alerts_and_other_tenants_hear_nothing(
    two_tenants, django_capture_on_commit_callbacks
):
    a, b = two_tenants
    _subscribe(a, "price.alert")
    _subscribe(b, "price.alert")
    paused = _alert(a, price_usd="0.30")
    a.client.patch(f"/api/spot/alerts/{paused['id']}", {"is_active": False}, format="json")
    _alert(b, price_usd="0.10")

    _cycle("RTX 4090", "US-East", 0.20, 0, django_capture_on_commit_callbacks)

    assert _deliveries(a, "price.alert") == [] and _deliveries(b, "price.alert") == []
    assert mail.outbox == []


def test_editing_the_line_rearms_a_triggered_alert(owner, django_capture_on_commit_callbacks):
    alert = _alert(owner, price_usd="0.30", cooldown_minutes=0)
    _cycle("RTX 4090", "US-East", 0.20, 0, django_capture_on_commit_callbacks)

    edited = owner.client.patch(
        f"/api/spot/alerts/{alert['id']}", {"price_usd": "0.25"}, format="json"
    )
    _cycle("RTX 4090", "US-East", 0.20, 5, django_capture_on_commit_callbacks)

    assert edited.json()["state"] == "armed"
    assert len(mail.outbox) == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"gpu": "GTX 9999", "direction": "below", "price_usd": "1"}, "gpu"),
        ({"gpu": "RTX 4090", "direction": "sideways", "price_usd": "1"}, "direction"),
        ({"gpu": "RTX 4090", "direction": "below", "price_usd": "-1"}, "price_usd"),
        ({"gpu": "RTX 4090", "direction": "below", "price_usd": "abc"}, "price_usd"),
        ({"gpu": "RTX 4090", "direction": "below", "price_usd": "1", "region": "Mars"}, "region"),
        (
            {"gpu": "RTX 4090", "direction": "below", "price_usd": "1", "cooldown_minutes": -5},
            "cooldown_minutes",
        ),
    ],
)
def test_bad_alerts_are_a_400_naming_the_field(owner, body, field):
    response = owner.client.post("/api/spot/alerts", body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] and field in response.json()["errors"]
    assert PriceAlert.objects.count() == 0


def test_the_monitor_fires_an_alert_set_above_the_live_price_once(
    owner, market, django_capture_on_commit_callbacks
):
    _subscribe(owner, "price.alert")
    _alert(owner, gpu="A100", price_usd="1000")

    with django_capture_on_commit_callbacks(execute=True):
        monitor_market()
        monitor_market()

    (sent,) = _deliveries(owner, "price.alert")
    assert sent["gpu"] == "A100" and 0 < sent["price_usd"] < 1000
    assert len(mail.outbox) == 1


def test_price_changed_goes_to_subscribers_when_the_price_moves_enough(two_tenants, settings):
    a, b = two_tenants
    _subscribe(a, "price.changed")
    settings.SPOT_PRICE_CHANGE_PERCENT = 5.0
    now = timezone.now()

    for minutes, usd in [(0, 1.00), (5, 1.03), (10, 1.06), (15, 1.04), (20, 0.98)]:
        _quote("H100", "US-East", usd, now + timedelta(minutes=minutes))
        announce_price_changes(["H100"], now + timedelta(minutes=minutes))

    moves = [(sent["previous_usd"], sent["price_usd"]) for sent in _deliveries(a, "price.changed")]
    assert moves == [(1.0, 1.06), (1.06, 0.98)]
    assert _deliveries(b, "price.changed") == []
