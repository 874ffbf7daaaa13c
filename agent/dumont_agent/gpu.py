"""GPU utilisation: NVML when a GPU is present, else the simulator's load profile, else 0."""

import json
import random
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GpuReading:
    utilization_percent: float
    memory_used_mb: int | None
    gpu_count: int
    source: str  # "nvml", "simulated" or "none"


class NvmlReader:
    """Mean utilisation over every GPU, through nvidia-ml-py (`pynvml`)."""

    def __init__(self):
        import pynvml  # optional dependency: the `nvml` extra

        pynvml.nvmlInit()
        self.nvml = pynvml
        self.handles = [
            pynvml.nvmlDeviceGetHandleByIndex(index) for index in range(pynvml.nvmlDeviceGetCount())
        ]
        if not self.handles:
            raise RuntimeError("no GPU")

    def read(self) -> GpuReading:
        rates = [self.nvml.nvmlDeviceGetUtilizationRates(handle) for handle in self.handles]
        memory = [self.nvml.nvmlDeviceGetMemoryInfo(handle).used for handle in self.handles]
        return GpuReading(
            utilization_percent=sum(rate.gpu for rate in rates) / len(rates),
            memory_used_mb=sum(memory) // (1024 * 1024),
            gpu_count=len(self.handles),
            source="nvml",
        )


class LoadFileReader:
    """The simulator's profile: `{"gpu_utilization_percent": 85, "noise_percent": 5}`."""

    def __init__(self, path: Path | None, gpu_count: int):
        self.path = path
        self.gpu_count = gpu_count
        self.random = random.Random()

    def read(self) -> GpuReading:
        try:
            profile = json.loads(self.path.read_text()) if self.path else {}
        except (OSError, ValueError):
            profile = {}
        if "gpu_utilization_percent" not in profile:
            return GpuReading(0.0, None, self.gpu_count, "none")
        noise = float(profile.get("noise_percent", 0))
        value = float(profile["gpu_utilization_percent"]) + self.random.uniform(-noise, noise)
        return GpuReading(round(min(100.0, max(0.0, value)), 1), None, self.gpu_count, "simulated")


def make_reader(load_file: Path | None, gpu_count: int):
    try:
        return NvmlReader()
    except Exception:  # no pynvml, no driver or no GPU: the simulated profile
        return LoadFileReader(load_file, gpu_count)
