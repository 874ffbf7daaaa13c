"""The GPU catalog: which GPUs Dumont rents, their names, memory and reference market prices.

Sources:
- `spot/data/gpus.csv`: our list of rentable GPUs, each mapped to its accelerator name in the
  Vast.ai catalog; VRAM from the vendors' spec sheets.
- `spot/data/reference/skypilot/vast_vms.csv`: the Vast.ai catalog snapshot from
  skypilot-org/skypilot-catalog v8 (Apache-2.0; see `spot/data/reference/README.md`), the anchor
  for marketplace prices per GPU-hour and where offers are located.
"""

import csv
import re
import statistics
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
REFERENCE_DIR = DATA_DIR / "reference"

# Vast.ai locations end in a continent code; our regions group them.
CONTINENT_REGIONS = {
    "NA": ("US-East", "US-West"),
    "EU": ("EU-West",),
    "AS": ("Asia-Pacific",),
    "OC": ("Asia-Pacific",),
}
REGIONS = ("US-East", "US-West", "EU-West", "Asia-Pacific")


@dataclass(frozen=True)
class Gpu:
    name: str
    vast_name: str
    vram_gb: int
    fp16_tflops: float = 0.0  # dense tensor throughput (see spot/data/README.md)
    memory_bandwidth_gbs: int = 0
    is_rentable: bool = True
    tracker_series: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return normalize_gpu_name(self.name)


def normalize_gpu_name(text: str) -> str:
    """`rtx 4090`, `RTX4090` and `RTX-4090` all become `RTX4090`."""
    return re.sub(r"[\s_\-]+", "", text).upper()


@cache
def all_gpus() -> tuple[Gpu, ...]:
    """Every GPU in `gpus.csv`, including cloud-only ones kept for comparisons."""
    with (DATA_DIR / "gpus.csv").open(newline="") as handle:
        return tuple(
            Gpu(
                name=row["name"],
                vast_name=row["vast_name"],
                vram_gb=int(row["vram_gb"]),
                fp16_tflops=float(row["fp16_tflops"]),
                memory_bandwidth_gbs=int(row["memory_bandwidth_gbs"]),
                is_rentable=row["rentable"] == "1",
                tracker_series=tuple(filter(None, row["tracker_series"].split(";"))),
            )
            for row in csv.DictReader(handle)
        )


@cache
def gpus() -> tuple[Gpu, ...]:
    """The GPUs Dumont rents, in the order of `gpus.csv`."""
    return tuple(gpu for gpu in all_gpus() if gpu.is_rentable)


@cache
def _by_key() -> dict[str, Gpu]:
    return {gpu.key: gpu for gpu in gpus()}


@cache
def _any_by_key() -> dict[str, Gpu]:
    return {gpu.key: gpu for gpu in all_gpus()}


def find_any_gpu(text: str) -> Gpu | None:
    """Like find_gpu, but also cloud-only GPUs (for comparisons and analytics)."""
    return _any_by_key().get(normalize_gpu_name(text))


def gpu_of_series(series: str) -> Gpu | None:
    """The catalog GPU of a price-tracker series id (`H100_80GB_SXM5` → H100)."""
    return next((gpu for gpu in all_gpus() if series in gpu.tracker_series), None)


def find_gpu(text: str) -> Gpu | None:
    """The catalog GPU a user means, accepting any case and spacing; None if unknown."""
    return _by_key().get(normalize_gpu_name(text))


def find_region(text: str) -> str | None:
    """The canonical region name for `us-east`, `US East`, `US-East`; None if unknown."""
    wanted = normalize_gpu_name(text)
    return next((region for region in REGIONS if normalize_gpu_name(region) == wanted), None)


@dataclass(frozen=True)
class ListedPrice:
    """One Vast.ai catalog row, per GPU: what an hour of one GPU cost and where."""

    usd_per_gpu_hour: float
    region_choices: tuple[str, ...]


@cache
def vast_list_prices() -> dict[str, tuple[ListedPrice, ...]]:
    """Vast.ai catalog prices per GPU (keyed by catalog GPU name), from `vast_vms.csv`."""
    by_vast_name: dict[str, list[ListedPrice]] = {}
    with (REFERENCE_DIR / "skypilot" / "vast_vms.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            count = int(row["AcceleratorCount"])
            continent = row["Region"].rsplit(",", 1)[-1].strip()
            by_vast_name.setdefault(row["AcceleratorName"], []).append(
                ListedPrice(
                    usd_per_gpu_hour=float(row["Price"]) / count,
                    region_choices=CONTINENT_REGIONS.get(continent, REGIONS),
                )
            )
    return {gpu.name: tuple(by_vast_name.get(gpu.vast_name, ())) for gpu in gpus()}


def anchor_price_usd(gpu: Gpu) -> float:
    """The median Vast.ai catalog price of one GPU-hour of `gpu`."""
    return statistics.median(price.usd_per_gpu_hour for price in vast_list_prices()[gpu.name])
