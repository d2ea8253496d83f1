"""The fast paths a device offers, and the defaults that choose them (``train.precision``,
``train.channels_last``, ``train.compile``, ``train.fused_optimizer``).

- Precision ``auto``: on CUDA, bf16 autocast where the GPU supports it (Ampere and newer), else
  fp16 autocast with a gradient scaler; on a CPU with native bf16 instructions (AVX512-BF16 or
  AMX, read from /proc/cpuinfo), bf16 autocast; elsewhere fp32. Parameters, optimiser states
  and the losses stay fp32 (every loss in :mod:`gankit.losses` casts its inputs; the gradient
  penalty's critic pass runs without autocast).
- channels_last ``auto``: on when convolutions gain from it, i.e. on CUDA and on a CPU in bf16
  (oneDNN's bf16 convolutions are NHWC kernels; in fp32 on a CPU it measured no faster).
- compile (off by default): ``torch.compile`` of every network, in place (state-dict keys do not
  change). It pays back only on long runs: the first steps of each phase compile for minutes.
- fused_optimizer (on by default): each optimiser step is one fused kernel (Adam, AdamW and SGD
  on CPU and CUDA) instead of torch's default foreach implementation, which walks the parameters
  in several passes: on 2 CPU cores a DCGAN's Adam step took ~25 ms that way and ~3 ms fused.
  The update is the same algorithm; only the order of floating-point operations differs.
- On CUDA, cuDNN picks the fastest convolution algorithms for the shapes in use
  (``cudnn.benchmark``), and TF32 matmuls are allowed unless the precision is an explicit fp32.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Literal

import torch

from gankit.errors import GankitError

log = logging.getLogger("gankit")

Precision = Literal["fp32", "bf16", "fp16"]
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX-BF16). Elsewhere oneDNN
    emulates bf16, slower than fp32, so ``auto`` stays fp32."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "").split()
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def resolve_precision(precision: str, device: torch.device) -> Precision:
    """``train.precision`` -> the autocast dtype name used on ``device``."""
    if precision != "auto":
        return precision  # type: ignore[return-value]
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def resolve_channels_last(setting: bool | str, device: torch.device, precision: Precision) -> bool:
    """``train.channels_last`` (true, false or auto) -> whether networks and batches are NHWC."""
    if setting != "auto":
        return bool(setting)
    return device.type == "cuda" or (device.type == "cpu" and precision == "bf16")


FUSED_OPTIMIZERS = ("adam", "adamw", "sgd")  # torch has fused CPU and CUDA kernels for these


def use_fused_optimizer(setting: bool, optimizer: str, device: torch.device) -> bool:
    """``train.fused_optimizer`` -> whether ``optimizer`` runs fused on ``device`` (where torch
    has no fused kernel, the default implementation runs: the setting is a preference)."""
    return setting and optimizer in FUSED_OPTIMIZERS and device.type in ("cpu", "cuda")


def autocast_dtype(precision: Precision) -> torch.dtype | None:
    """The autocast dtype of a resolved precision; None for fp32 (no autocast)."""
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def configure_backends(device: torch.device, precision: str) -> None:
    """cuDNN autotuning, and TF32 unless fp32 was asked for by name (CUDA only)."""
    if device.type != "cuda":
        return
    torch.backends.cudnn.benchmark = True
    allow_tf32 = precision != "fp32"
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    torch.backends.cudnn.allow_tf32 = allow_tf32


def select_device(name: str) -> torch.device:
    """ "auto" -> cuda when available, else cpu. An unavailable explicit device is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise GankitError("train.device=cuda but no CUDA device is available (use auto or cpu)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise GankitError("train.device=mps but MPS is not available (use auto or cpu)")
    return torch.device(name)
