"""Which arithmetic a rollout runs in: float32, or bfloat16 where the hardware makes it pay.

The state between steps, the weights and the loss stay float32 either way, so
rounding does not pile up over thousands of steps; only each step's update is
computed in bfloat16.
"""

from __future__ import annotations

import functools

import torch

from .model import NCA

PRECISIONS = ("auto", "float32", "bfloat16")
BF16_MIN_HIDDEN = 32  # below this the casts cost more than bfloat16 saves


def _check(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def inference_dtype(model: NCA, device: torch.device | str, precision: str = "auto") -> torch.dtype | None:
    """The dtype that growing computes updates in: None for float32.

    "auto" takes bfloat16 on CPUs with native bfloat16 matrix units (AMX or
    AVX512-BF16), where oneDNN runs the texture preset's step about twice as
    fast and the texture scores the same; tiny models only pay for the casts.
    Elsewhere, and with "float32", float32.
    """
    _check(precision)
    if precision == "float32":
        return None
    if precision == "bfloat16":
        return torch.bfloat16
    native = torch.device(device).type == "cpu" and torch.backends.mkldnn.is_available() and cpu_has_bf16_units()
    return torch.bfloat16 if native and model.hidden >= BF16_MIN_HIDDEN else None


def training_dtype(device: torch.device | str, precision: str = "auto") -> torch.dtype | None:
    """The dtype a training rollout autocasts to: None for float32.

    "auto" is bfloat16 on CUDA and float32 elsewhere: on a CPU with bfloat16
    units, bfloat16 trains faster but gave worse textures, so a CPU asks for it
    explicitly.
    """
    _check(precision)
    if precision == "bfloat16" or (precision == "auto" and torch.device(device).type == "cuda"):
        return torch.bfloat16
    return None


def dtype_name(dtype: torch.dtype | None) -> str:
    """How training.json and model cards name a compute dtype (None: float32)."""
    return "bfloat16" if dtype == torch.bfloat16 else "float32"


@functools.cache
def cpu_has_bf16_units() -> bool:
    """Whether this CPU multiplies bfloat16 natively (Linux only: elsewhere float32 is kept)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = cpuinfo.read()
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags
