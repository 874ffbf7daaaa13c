"""What the big clouds charge for a comparable GPU, from the SkyPilot catalogs.

Source: spot/data/reference/gpu_price_summary.csv (derived from skypilot-org/skypilot-catalog v8,
Apache-2.0): median on-demand USD per GPU-hour per cloud and accelerator. GCP's figures are the
accelerator attachment only (the host VM is billed apart), so GCP comparisons understate GCP.
Azure is not in the reference data (see its README): Azure answers are None, never invented.
"""

import csv
from dataclasses import dataclass
from functools import cache

from spot.catalog import REFERENCE_DIR, Gpu, find_any_gpu

CLOUDS = ("aws", "gcp", "azure")
# SkyPilot accelerator names → our catalog names, for memory and speed.
ACCELERATOR_GPU = {
    "A100-80GB": "A100",
    "H100": "H100",
    "H100-MEGA": "H100",
    "H200": "H200",
    "B200": "B200",
    "L4": "L4",
    "L40S": "L40S",
    "V100": "V100",
    "T4": "T4",
    "RTX PRO Server 6000": "RTX PRO 6000",
}


@dataclass(frozen=True)
class CloudPrice:
    cloud: str
    accelerator: str
    gpu: Gpu  # its specs, for speed comparisons
    usd_per_gpu_hour: float
    is_same_gpu: bool


@cache
def _on_demand() -> dict[str, dict[str, float]]:
    prices: dict[str, dict[str, float]] = {}
    with (REFERENCE_DIR / "gpu_price_summary.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["median_ondemand_per_gpu_hour"]:
                prices.setdefault(row["cloud"], {})[row["accelerator"]] = float(
                    row["median_ondemand_per_gpu_hour"]
                )
    return prices


def equivalent(cloud: str, gpu: Gpu) -> CloudPrice | None:
    """The same GPU on that cloud if it rents it, else its cheapest GPU with at least as much
    memory; None when the cloud is not in the data (Azure) or has nothing comparable."""
    offered = _on_demand().get(cloud, {})
    candidates = []
    for accelerator, price in offered.items():
        spec = find_any_gpu(ACCELERATOR_GPU.get(accelerator, ""))
        if spec is None:
            continue
        if spec.name == gpu.name:
            return CloudPrice(cloud, accelerator, spec, price, True)
        if spec.vram_gb >= gpu.vram_gb:
            candidates.append(CloudPrice(cloud, accelerator, spec, price, False))
    return min(candidates, key=lambda price: price.usd_per_gpu_hour, default=None)


def savings(gpu: Gpu, hours: float, price_micros: int) -> dict:
    """`hours` of `gpu` at our price against the same work on each cloud's comparable GPU:
    the savings endpoint's numbers (USD, rounded to cents; None where a cloud has no match)."""
    cost_dumont = hours * price_micros / 1_000_000
    body: dict = {"cost_dumont": round(cost_dumont, 2)}
    compared = {}
    for cloud in CLOUDS:
        match = equivalent(cloud, gpu)
        if match is None:
            body[f"cost_{cloud}"] = None
            continue
        # Same work: hours on the cloud's GPU scale with the speed difference.
        cloud_hours = hours * gpu.fp16_tflops / match.gpu.fp16_tflops
        body[f"cost_{cloud}"] = round(cloud_hours * match.usd_per_gpu_hour, 2)
        compared[cloud] = match.accelerator
    savings = body["cost_aws"] - cost_dumont if body["cost_aws"] is not None else None
    body.update(
        savings_vs_aws=round(savings, 2) if savings is not None else None,
        savings_percent=round(savings / body["cost_aws"] * 100, 1)
        if savings is not None and body["cost_aws"]
        else None,
        roi_annual=round(savings * 12, 2) if savings is not None else None,
        compared_with=compared,
    )
    return body
