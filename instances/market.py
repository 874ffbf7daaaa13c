"""What spot's monitor sees of the market: the active provider's offers (spot cannot import us)."""

from instances.providers import get_provider
from spot.market import MarketOffer


def offers_for_spot() -> list[MarketOffer]:
    """Every offer of the active provider, priced per GPU-hour."""
    provider = get_provider()
    return [
        MarketOffer(
            provider=offer.provider,
            gpu=offer.gpu,
            region=offer.region,
            gpu_count=offer.gpu_count,
            price_micros_per_gpu_hour=offer.price_micros_per_hour // offer.gpu_count,
            available=offer.available,
        )
        for offer in provider.search_offers(
            gpu=None, region=None, gpu_count=None, max_price_micros=None
        )
    ]
