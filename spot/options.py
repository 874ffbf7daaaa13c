"""Every GPU that can run a job, with its live price, time and cost: what llm-gpus,
training-cost and the advisor rank (compute model in spot/compute.py)."""

from dataclasses import dataclass
from datetime import datetime

from spot import compute, prices
from spot.catalog import Gpu, gpus


@dataclass(frozen=True)
class JobOption:
    gpu: Gpu
    gpu_count: int
    memory_gb: float
    headroom: float  # share of the GPUs' memory left free
    price_micros: int  # per GPU-hour, the cheapest offer now
    region: str | None  # where that offer is; None when only history has a price
    hours: float

    @property
    def hourly_usd(self) -> float:
        return self.price_micros * self.gpu_count / 1_000_000

    @property
    def cost_usd(self) -> float:
        return self.hourly_usd * self.hours


def job_options(
    parameters_b: float,
    mode: str,
    tokens: float,
    now: datetime,
    *,
    region: str = "",
    hours: float | None = None,
) -> list[JobOption]:
    """Options sorted by cost. Training time from 6·N·D unless `hours` fixes it (serving)."""
    options = []
    live = prices.live_by_gpu(now)
    for gpu in gpus():
        fitted = compute.fit(gpu, parameters_b, mode)
        if fitted is None:
            continue
        price, where = prices.cheapest_offer(
            gpu.name, now, region=region, live=live.get(gpu.name, [])
        )
        if price is None:
            continue
        duration = hours
        if duration is None:
            duration = compute.training_hours(parameters_b, tokens, gpu, fitted.gpu_count)
        options.append(
            JobOption(
                gpu, fitted.gpu_count, fitted.memory_gb, fitted.headroom, price, where, duration
            )
        )
    return sorted(options, key=lambda option: (option.cost_usd, option.hours))
