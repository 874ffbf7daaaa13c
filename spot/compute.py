"""The compute model behind llm-gpus and training-cost: arithmetic a user can follow.

Memory (GB) = parameters (billions) x bytes per parameter x OVERHEAD, where bytes per parameter
are: inference 2 (FP16/BF16 weights), lora 2 (frozen FP16 weights; adapters and their optimizer
are small), full 16 (FP16 weights and gradients + FP32 master weights and two Adam moments).
OVERHEAD = 1.2 covers activations, KV cache and the CUDA context at moderate batch sizes.
A model that does not fit one GPU is split over the fewest GPUs that hold it (up to 8).

Training time = 6 x N x D FLOPs (N parameters, D tokens) / (GPUs x peak dense FP16 TFLOPS x
MFU), with MFU = 0.35, a typical model-FLOPs utilisation for well-tuned PyTorch training on one
node. Tokens from a dataset size: 4 bytes of text per token (English BPE tokenizers).
"""

import math
import re
from dataclasses import dataclass

from spot.catalog import Gpu

BYTES_PER_PARAMETER = {"inference": 2, "lora": 2, "full": 16}
OVERHEAD = 1.2
MFU = 0.35
BYTES_PER_TOKEN = 4
MAX_GPUS = 8
MODEL_SIZES = ("7B", "13B", "30B", "70B", "180B")


def parameters_billions(text: str) -> float | None:
    """`7B`, `70b`, `llama2-13b`, `mistral-7B-instruct`, `1.5` → billions of parameters."""
    match = re.search(r"(\d+(?:\.\d+)?)\s*b\b", text.lower()) or re.fullmatch(
        r"\s*(\d+(?:\.\d+)?)\s*", text
    )
    return float(match.group(1)) if match else None


def dataset_tokens(text: str) -> float | None:
    """`50GB`, `500MB`, `2TB`, `50` (GB) → tokens, at BYTES_PER_TOKEN."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(tb|gb|mb|kb)?\s*", text.lower())
    if not match:
        return None
    scale = {"tb": 1e12, "gb": 1e9, "mb": 1e6, "kb": 1e3, None: 1e9}[match.group(2)]
    return float(match.group(1)) * scale / BYTES_PER_TOKEN


def memory_gb(parameters_b: float, mode: str) -> float:
    return parameters_b * BYTES_PER_PARAMETER[mode] * OVERHEAD


@dataclass(frozen=True)
class Fit:
    gpu: Gpu
    gpu_count: int
    memory_gb: float

    @property
    def headroom(self) -> float:
        """Share of the GPUs' memory left free."""
        return 1 - self.memory_gb / (self.gpu.vram_gb * self.gpu_count)


def fit(gpu: Gpu, parameters_b: float, mode: str) -> Fit | None:
    """How many of this GPU hold the model; None beyond MAX_GPUS."""
    needed = memory_gb(parameters_b, mode)
    count = max(1, math.ceil(needed / gpu.vram_gb))
    return Fit(gpu, count, needed) if count <= MAX_GPUS else None


def training_hours(parameters_b: float, tokens: float, gpu: Gpu, gpu_count: int) -> float:
    flops = 6 * parameters_b * 1e9 * tokens
    return flops / (gpu_count * gpu.fp16_tflops * 1e12 * MFU) / 3600
