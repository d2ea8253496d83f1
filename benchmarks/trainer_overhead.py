"""How much of the hardware gankit's trainer leaves on the table: its DCGAN step vs a bare loop.

    python -m benchmarks.trainer_overhead            # ~2 min on 2 CPU cores
    python -m benchmarks.trainer_overhead --quick    # fewer repeats

The bare loop is written here from the same network classes (copies of the trainer's initial
weights), the same losses (BCE with one-sided label smoothing 0.9, non-saturating G loss), the
same Adam settings and implementation (fused, the trainer's default), batch and precision, on
batches indexed from the same uint8 tensor: what a careful user would write by hand.
gankit's step (:meth:`gankit.training.Trainer.train_step`) adds its loader (a resumable
permutation), per-phase freezing of the other network, the non-finite guard, on-device
statistics and the phase bookkeeping. Both run alternately in one process
(:func:`benchmarks.common.side_by_side`); ``ratio`` = bare seconds per step / gankit's, the
median over rounds of each round's ratio, so 1.0 means no overhead (goal >= 0.97). Measured
with fp32 and with the device's default precision. One JSON line per precision.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.common import emit, machine, paired_ratio, side_by_side
from gankit.config import load_yaml, preset_path
from gankit.resolve import build_config
from gankit.training import Trainer
from gankit.training.fastpath import use_fused_optimizer


def dcgan_trainer(precision: str, device: str, batch_size: int, run_dir: str) -> Trainer:
    """The DCGAN MNIST preset at 32 px (DCGAN-32) on the bundled digits, at ``precision``."""
    preset = load_yaml(preset_path("dcgan", "mnist"))
    cfg = build_config(
        preset, family="dcgan",
        data={"source": "mnist-bundled", "root": None, "resolution": 32},
        train={"precision": precision, "device": device, "batch_size": batch_size,
               "progress": False},
        output={"tensorboard": False},
    )  # fmt: skip
    return Trainer(cfg, run_dir)


class BareLoop:
    """The same DCGAN step written plainly: D on real and fake, then G, with Adam."""

    def __init__(self, trainer: Trainer) -> None:
        nets = trainer.objective.networks
        self.generator = copy.deepcopy(nets["generator"])
        self.discriminator = copy.deepcopy(nets["discriminator"])
        train = trainer.cfg.train
        # the trainer's own rule for its Adam implementation (fused by default)
        fused = use_fused_optimizer(train.fused_optimizer, "adam", trainer.device)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), train.lr_g, train.betas,
                                      fused=fused)  # fmt: skip
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), train.lr_d, train.betas,
                                      fused=fused)  # fmt: skip
        self.images = trainer.images.images.to(trainer.device)  # (N, 1, 32, 32) uint8
        self.batch_size = train.batch_size
        self.latent_dim = trainer.cfg.model.latent_dim
        self.real_label = trainer.cfg.model.real_label
        self.device = trainer.device
        self.autocast = trainer._autocast  # the trainer's own precision settings
        self.memory_format = (
            torch.channels_last if getattr(trainer, "channels_last", False) else None
        )

    def step(self) -> None:
        n = self.batch_size
        index = torch.randint(len(self.images), (n,), device=self.device)
        real = self.images[index].float().div_(127.5).sub_(1)
        if self.memory_format is not None:
            real = real.contiguous(memory_format=self.memory_format)
        g, d = self.generator, self.discriminator
        with self.autocast():
            with torch.no_grad():
                fake = g(torch.randn(n, self.latent_dim, device=self.device))
            real_logits, fake_logits = d(real).float(), d(fake).float()
            smooth = self.real_label
            loss_d = (smooth * F.softplus(-real_logits) + (1 - smooth) * F.softplus(real_logits)
                      ).mean() + F.softplus(fake_logits).mean()  # fmt: skip
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        d.requires_grad_(False)
        with self.autocast():
            fake_logits = d(g(torch.randn(n, self.latent_dim, device=self.device))).float()
            loss_g = F.softplus(-fake_logits).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        d.requires_grad_(True)


def measure(
    precision: str, device: str, batch_size: int, steps: int, repeats: int
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = dcgan_trainer(precision, device, batch_size, run_dir)
        bare = BareLoop(trainer)
        rounds = side_by_side({"gankit": trainer.train_step, "bare": bare.step}, steps, repeats,
                              device=device)  # fmt: skip
        seconds = {name: statistics.median(times) for name, times in rounds.items()}
        resolved = trainer.precision
    return {
        "benchmark": "trainer_overhead",
        "family": "dcgan",
        "preset": "configs/dcgan/mnist.yaml (32 px, bundled digits)",
        "precision": resolved,
        "batch_size": batch_size,
        "gankit_images_per_s": round(batch_size / seconds["gankit"], 1),
        "bare_images_per_s": round(batch_size / seconds["bare"], 1),
        "ratio": round(paired_ratio(rounds["bare"], rounds["gankit"]), 4),
        "steps": steps,
        "repeats": repeats,
        **machine(device),
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (~1 min)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--precisions", default="fp32,auto", help="comma-separated")
    args = parser.parse_args(argv)
    steps, repeats = (3, 11) if args.quick else (5, 21)
    return [
        emit(measure(p, args.device, args.batch_size, steps, repeats))
        for p in args.precisions.split(",")
    ]


if __name__ == "__main__":
    main()
    sys.exit(0)
