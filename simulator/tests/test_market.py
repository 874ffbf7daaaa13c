from datetime import UTC, datetime, timedelta

from simulator import market
from spot.catalog import find_gpu

MONDAY = datetime(2026, 11, 23, tzinfo=UTC)


def test_the_same_seed_and_time_give_the_same_market_in_any_process():
    assert market.market(7, MONDAY) == market.market(7, MONDAY)
    assert market.market(7, MONDAY) != market.market(8, MONDAY)


def test_offers_come_cheapest_first_and_cover_every_listed_region():
    offers = market.market(1, MONDAY)

    prices = [offer.price_micros_per_hour for offer in offers]
    assert prices == sorted(prices)
    rtx = {offer.region for offer in offers if offer.gpu == "RTX 4090"}
    assert rtx == {"US-East", "US-West", "EU-West", "Asia-Pacific"}


def test_prices_follow_the_vast_catalog_anchor_within_the_rhythms():
    gpu = find_gpu("RTX 4090")
    day = [MONDAY + timedelta(minutes=5 * step) for step in range(288)]

    prices = [market.price_micros(1, gpu, "US-East", 1, at) / 1e6 for at in day]

    # anchor 0.395 $/h (median of the Vast.ai catalog rows); rhythms and noise stay within ±17 %
    assert 0.395 * 0.83 < min(prices) < max(prices) < 0.395 * 1.17


def test_the_us_afternoon_is_dearer_than_the_night_on_average():
    gpu = find_gpu("A100")

    def mean_price(hours):
        values = [
            market.price_micros(1, gpu, "US-East", 1, MONDAY + timedelta(hours=h, minutes=m))
            for h in hours
            for m in range(0, 60, 5)
        ]
        return sum(values) / len(values)

    assert mean_price(range(18, 23)) > mean_price(range(6, 11))


def test_weekends_are_cheaper_than_weekdays():
    gpu = find_gpu("H100")
    saturday = MONDAY + timedelta(days=5)

    weekday = sum(
        market.price_micros(1, gpu, "EU-West", 1, MONDAY + timedelta(hours=h)) for h in range(24)
    )
    weekend = sum(
        market.price_micros(1, gpu, "EU-West", 1, saturday + timedelta(hours=h)) for h in range(24)
    )

    assert weekend < weekday


def test_interruption_hazard_comes_from_the_aws_advisor_where_it_knows_the_gpu():
    # V100s sit in AWS's worst bucket (>20 %/month), A100-80GB mostly in <5 %.
    assert market.hazard_per_hour("V100") > market.hazard_per_hour("A100")
    assert market.hazard_per_hour("RTX 4090") == market.hazard_per_hour("RTX 3090")
