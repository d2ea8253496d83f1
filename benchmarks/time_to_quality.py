"""Quality per hour of compute: DCGAN (its MNIST preset) on full MNIST for fixed wall-clock budgets.

    python -m benchmarks.time_to_quality                       # budgets 5, 10, 15 min (~20 min)
    python -m benchmarks.time_to_quality --budgets 1,2         # quicker

Trains ``configs/dcgan/mnist.yaml`` with the trainer's defaults (the device's fast path) on the
60,000 MNIST training digits (``--data-root``), stepping :meth:`gankit.training.Trainer.train_step`
until each budget of training wall time is spent; the clock stops while it evaluates. The
preset's learning rates decay linearly to 0 over the last part of ``train.steps``
(``train.lr_decay_start``); a run for a wall-clock budget does not know its step count, so it
trains the first ``--calibrate`` minutes at the full rate, then sets ``train.steps`` to the steps
its speed so far projects for the last budget (it stops early if it gets there). At each
budget it generates 2,000 images from the sampling network (EMA when the preset keeps one;
seed 0) and computes FID and KID (x 1000) against the first 2,000 MNIST *test* digits: the
metrics' default protocol (TF-Inception pool3, clean-fid bicubic resize). Real train digits
score about 10 / 2 on this protocol: its floor. Goal on 2 CPU cores: FID <= 18 and
KID x 1000 <= 8 after 15 minutes. One JSON line per budget.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from typing import Any

import torch

from benchmarks.common import MNIST, emit, machine
from gankit.config import load_yaml, preset_path
from gankit.metrics import Reference, evaluate
from gankit.resolve import build_config
from gankit.runfolder.images import to_uint8
from gankit.training import Trainer

N = 2000


def judge(trainer: Trainer, data_root: str) -> dict[str, float]:
    """FID and KID x 1000 of 2,000 samples vs the first 2,000 MNIST test digits."""
    images = trainer.objective.sample(N, trainer.sampling_network(), seed=0)
    reference = Reference(dataset="mnist", split="test", n=N, resolution=28, channels=1,
                          root=data_root)  # fmt: skip
    results = evaluate(to_uint8(images.float().cpu()), reference, ["fid", "kid"],
                       str(trainer.device), progress=False, seed=0)  # fmt: skip
    values = {r.metric: r.value for r in results}
    return {"fid": round(values["fid"], 2), "kid_x1000": round(values["kid"] * 1000, 2)}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="5,10,15", help="minutes of training, ascending")
    parser.add_argument("--data-root", default=str(MNIST))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--calibrate", type=float, default=1.0,
                        help="minutes of training whose speed projects train.steps")  # fmt: skip
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config overrides, as for gankit train")  # fmt: skip
    args = parser.parse_args(argv)
    budgets = sorted(float(b) for b in args.budgets.split(","))
    preset = load_yaml(preset_path("dcgan", "mnist"))
    cfg = build_config(
        preset, args.set, family="dcgan",
        data={"source": "mnist", "root": args.data_root},
        train={"device": args.device, "steps": 10**7, "progress": False},
        eval={"metrics": []}, output={"tensorboard": False},
    )  # fmt: skip
    records = []
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(cfg, run_dir)
        trained, planned = 0.0, None
        for budget in budgets:
            start = time.perf_counter()
            while (now := trained + time.perf_counter() - start) < budget * 60:
                if planned is None and now >= args.calibrate * 60:
                    planned = round(trainer.step / now * budgets[-1] * 60)
                    trainer.cfg.train.steps = planned  # the lr schedule's end
                if planned is not None and trainer.step >= planned:
                    break
                trainer.train_step()
            if trainer.device.type == "cuda":
                torch.cuda.synchronize(trainer.device)
            trained += time.perf_counter() - start
            records.append(emit({
                "benchmark": "time_to_quality",
                "family": "dcgan",
                "preset": "configs/dcgan/mnist.yaml",
                "overrides": args.set,
                "precision": trainer.precision,
                "budget_minutes": budget,
                "steps": trainer.step,
                "planned_steps": planned,
                "lr_decay_start": cfg.train.lr_decay_start,
                "images_seen": trainer.step * cfg.train.batch_size,
                **judge(trainer, args.data_root),
                "n": N,
                "reference": "mnist test, first 2,000",
                **machine(args.device),
            }))  # fmt: skip
    return records


if __name__ == "__main__":
    main()
    sys.exit(0)
