"""Training throughput of every family: images/s in fp32 and on the fast path, and FLOP use.

    python -m benchmarks.throughput                      # every family, ~6 min on 2 CPU cores
    python -m benchmarks.throughput --families dcgan,sngan --quick

Each family trains from its small-data preset (``mnist`` for the noise-to-image families, on the
bundled digits; ``digits-edges`` or ``mnist-bundled`` for translators) at the preset's
resolution, width and batch. Two settings, alternating in one process (one Trainer each, the
same initial weights): ``fp32`` (``train.precision=fp32``, ``train.channels_last=false``,
``train.fused_optimizer=false``: plain PyTorch) and ``fast`` (the defaults: ``precision=auto``,
``channels_last=auto`` and fused optimiser steps, which on a CPU with bf16 units means bf16
autocast + channels_last + fused Adam). Images/s counts the real images one
training step consumes (``batch_size`` per D step).

FLOPs per step are counted with ``torch.utils.flop_counter``'s formulas over one step
(matmuls and convolutions, forward and backward); ``utilisation`` = FLOP/s achieved / the
matmul peak measured in the same run for the step's dtype (fp32 or bf16), so 1.0 would be a
step that is all large matmuls at the machine's best. One JSON line per family, then a table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from benchmarks.common import emit, machine, matmul_peak, paired_ratio, side_by_side
from gankit.config import load_yaml, preset_path
from gankit.objectives import OBJECTIVES
from gankit.resolve import build_config
from gankit.training import Trainer

PRESETS = {"cyclegan": "digits-edges", "pix2pix": "digits-edges", "siamese": "digits-edges",
           "spade": "digits-edges", "srgan": "mnist-bundled"}  # fmt: skip
NOISE_DATA = {"source": "mnist-bundled", "root": None}


def family_config(family: str, fast: bool, device: str) -> Any:
    preset_name = PRESETS.get(family, "mnist")
    preset = load_yaml(preset_path(family, preset_name))
    data = {} if family in PRESETS else NOISE_DATA
    speed = {} if fast else {"precision": "fp32", "channels_last": False, "fused_optimizer": False}
    return build_config(
        preset, family=family, data=data,
        train={**speed, "device": device, "progress": False, "ema": False},
        eval={"metrics": []}, output={"tensorboard": False},
    )  # fmt: skip


class _FlopCount(TorchDispatchMode):
    """Sums ``torch.utils.flop_counter``'s per-operator FLOP formulas over every operator run.

    ``FlopCounterMode`` itself tracks modules with backward hooks that ``autograd.grad`` on a
    leaf input (the gradient penalty of WGAN-GP and ProGAN) refuses; this counts the same FLOPs
    without the per-module breakdown.
    """

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def count_flops(trainer: Trainer) -> int:
    """FLOPs of one training step (all of its phases), forward and backward."""
    with _FlopCount() as counter:
        trainer.train_step()
    return counter.total


def measure(family: str, device: str, steps: int, repeats: int, peaks: dict[str, float]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {
            name: Trainer(family_config(family, name == "fast", device), f"{tmp}/{name}")
            for name in ("fp32", "fast")
        }
        trainers["fast"].objective.load_state_dict(trainers["fp32"].objective.state_dict())
        rounds = side_by_side({k: t.train_step for k, t in trainers.items()}, steps, repeats,
                              warmup=2, device=device)  # fmt: skip
        seconds = {name: statistics.median(times) for name, times in rounds.items()}
        flops = count_flops(trainers["fp32"])
        batch = trainers["fp32"].cfg.train.batch_size
        precision = trainers["fast"].precision
        resolution = trainers["fp32"].cfg.data.resolution
    record: dict[str, Any] = {
        "benchmark": "throughput",
        "family": family,
        "preset": f"configs/{family}/{PRESETS.get(family, 'mnist')}.yaml",
        "resolution": resolution,
        "batch_size": batch,
        "fp32_images_per_s": round(batch / seconds["fp32"], 1),
        "fast_images_per_s": round(batch / seconds["fast"], 1),
        "speedup": round(paired_ratio(rounds["fp32"], rounds["fast"]), 3),
        "fast_precision": precision,
        "gflop_per_step": round(flops / 1e9, 3),
        "fp32_utilisation": round(flops / seconds["fp32"] / peaks["fp32"], 3),
        "fast_utilisation": round(
            flops / seconds["fast"] / peaks["bf16" if precision == "bf16" else "fp32"], 3
        ),
        "steps": steps,
        "repeats": repeats,
    }
    return record


def print_table(records: list[dict[str, Any]]) -> None:
    print(f"\n{'family':<9} {'res':>4} {'batch':>5} {'fp32 img/s':>10} {'fast img/s':>10} "
          f"{'speedup':>7} {'GFLOP/step':>10} {'util fp32':>9} {'util fast':>9}")  # fmt: skip
    for r in records:
        print(f"{r['family']:<9} {r['resolution']:>4} {r['batch_size']:>5} "
              f"{r['fp32_images_per_s']:>10.1f} {r['fast_images_per_s']:>10.1f} "
              f"{r['speedup']:>7.2f} {r['gflop_per_step']:>10.2f} {r['fp32_utilisation']:>9.2f} "
              f"{r['fast_utilisation']:>9.2f}")  # fmt: skip


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(OBJECTIVES.names()))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    args = parser.parse_args(argv)
    steps, repeats = (2, 3) if args.quick else (4, 5)
    peaks = {"fp32": matmul_peak(torch.float32, args.device),
             "bf16": matmul_peak(torch.bfloat16, args.device)}  # fmt: skip
    emit({"benchmark": "matmul_peak", "fp32_gflop_per_s": round(peaks["fp32"] / 1e9, 1),
          "bf16_gflop_per_s": round(peaks["bf16"] / 1e9, 1), **machine(args.device)})  # fmt: skip
    records = [
        emit(measure(family.strip(), args.device, steps, repeats, peaks))
        for family in args.families.split(",")
        if family.strip()
    ]
    print_table(records)
    return records


if __name__ == "__main__":
    main()
    sys.exit(0)
