"""HD inference speed, memory and seams of ``gankit.translate.translate_image`` (not a test).

    python -m benchmarks.translate_speed            # 4096 x 3072 RGB, grid and overlap modes
    python -m benchmarks.translate_speed --quick    # 1024 x 768, also whole mode: 1-2 min, 2 cores
    python -m benchmarks.translate_speed --big      # adds 8192 x 8192 (several minutes)

``--run RUN`` uses the trained translator of a gankit run (an RGB, same-size one: Siamese GAN,
CycleGAN, pix2pix), e.g. the one ``scripts/hd_example.py`` trains. Otherwise the translator is
an *untrained* generator, stated in every record: by default the Siamese
GAN's ``gankit.nets.siamese.PatchGenerator`` (batch norm, reflection padding, nearest
upsampling) at ``--width 16`` with ``--blocks 6`` residual blocks. ``--net cyclegan`` uses
CycleGAN's ResNet translator (``gankit.nets.translation.ResNetTranslator``, instance norm with
running statistics; untrained, its transposed convolutions cover the output with a checkerboard
that dominates the gradients); ``--net small`` (also the fallback when those modules are
missing) a 4-layer zero-padded convolutional network defined here. Untrained norm layers hold
their initial running statistics (mean 0, variance 1), which flatten the output to grey; so the
running statistics are first estimated from random 256 px crops of the image (averages over
train-mode passes, no gradients). The network is then in eval mode: no per-tile statistics.

Every (size, mode) runs in a fresh subprocess, so that ``peak_rss_mb`` is that run's own peak:
``resource.getrusage(RUSAGE_SELF).ru_maxrss``, the whole process's peak resident memory,
including the Python and torch runtime, the uint8 input and output images and the network's
activations; ``setup_rss_mb`` is the same measure just before translating (runtime, network and
input image), so the difference is what translation itself added.

Printed: one JSON object per run, {size, mode, tile, overlap, megapixels_per_s (input pixels),
seconds, peak_rss_mb, setup_rss_mb, seam scores, seam_period, network, and the machine: threads,
device, commit...}, then a table. The seam scores (:func:`gankit.translate.seam_score`):

- ``seam_score``: on the mode's own tile edges (grid: the tile borders; overlap: both edges of
  every overlap band; whole: the grid mode's lines, as a reference), against all other pairs.
- ``seam_score_phase``: the same, against the other pairs of the same phase modulo the
  network's total stride (``seam_period``): its upsampling leaves a pattern of that period,
  phase-locked to tiles that are multiples of it, which moves the plain score off 1 (an
  untrained Siamese generator scores about 1.1 on lines that are no border at all).
- ``seam_score_control``: the plain score on the same tiling shifted by half a stride (rounded
  to a multiple of 8 to keep that phase): lines that are no tile border, so what the plain score
  gives on this output without seams.
- ``seam_score_band_centres`` (overlap and whole): the lines through the middle of every
  overlap band, where a per-tile difference would show most after blending.
- ``seam_score_overlap_edges`` (whole): the overlap mode's edges on the untiled pass.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks.common import REPO, machine
from gankit.translate import plan_tiles, seam_score, translate_image

SIZES = {"quick": (768, 1024), "hd": (3072, 4096), "big": (8192, 8192)}  # (height, width)


def synthetic_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8: colour gradients, waves of several scales, sharp-edged discs and noise,
    made 128 rows at a time so that no float copy of the whole image exists."""
    rng = np.random.default_rng(seed)
    discs = rng.uniform(0, 1, (40, 6))  # centre y, centre x, radius, colour r g b
    image = np.empty((height, width, 3), np.uint8)
    x = np.arange(width)[None, :] / width
    for top in range(0, height, 128):
        y = np.arange(top, min(top + 128, height))[:, None] / height
        channels = []
        for c in range(3):
            value = 0.35 + 0.3 * (x * (c == 0) + y * (c == 1) + 0.5 * (x + y) * (c == 2))
            value = value + 0.12 * np.sin(2 * np.pi * (9 + 4 * c) * x) * np.cos(2 * np.pi * 7 * y)
            value = value + 0.05 * np.sin(2 * np.pi * 150 * (x + 0.7 * y))
            channels.append(value)
        block = np.stack(channels, axis=2)
        for cy, cx, radius, *colour in discs:
            inside = (y - cy) ** 2 + ((x - cx) * width / height) ** 2 < (0.02 + 0.08 * radius) ** 2
            block[inside] = colour
        block += rng.normal(0, 0.02, block.shape)
        image[top : top + len(block)] = np.clip(block * 255, 0, 255).astype(np.uint8)
    return image


class SmallTranslator(nn.Module):
    """(N, 3, h, w) -> (N, 3, h, w) in [-1, 1]: conv7x7-32, 2 x conv3x3-32, conv7x7-3, instance
    norm (running statistics) and ReLU between, tanh; zero padding, as many networks have."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for fan_in, fan_out, kernel in ((3, width, 7), (width, width, 3), (width, width, 3)):
            layers += [nn.Conv2d(fan_in, fan_out, kernel, padding=kernel // 2)]
            layers += [nn.InstanceNorm2d(fan_out, track_running_stats=True), nn.ReLU()]
        layers += [nn.Conv2d(width, 3, 7, padding=3), nn.Tanh()]
        self.layers = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


def build_network(name: str, width: int, blocks: int) -> tuple[nn.Module, str, int]:
    """(network, description, the multiple its input sides need)."""
    if name == "cyclegan":
        try:
            from gankit.nets.translation import ResNetTranslator

            net = ResNetTranslator(
                in_channels=3, out_channels=3, width=width, n_blocks=blocks, norm="instance"
            )
            return net, f"untrained CycleGAN ResNetTranslator(width={width}, blocks={blocks})", 4
        except (ImportError, TypeError) as error:
            print(f"# cyclegan network unavailable ({error}); using the small one", file=sys.stderr)
    if name == "siamese":
        try:
            from gankit.nets.siamese import PatchGenerator

            net = PatchGenerator(in_channels=3, out_channels=3, width=width, residual_blocks=blocks)
            return net, f"untrained Siamese PatchGenerator(width={width}, blocks={blocks})", 4
        except (ImportError, TypeError) as error:
            print(f"# siamese network unavailable ({error}); using the small one", file=sys.stderr)
    return SmallTranslator(), "untrained SmallTranslator (4 convs, width 32, defined here)", 1


def trained_translator(run: str, device: str) -> tuple[Any, str, int]:
    """The translator of a gankit run (or export/checkpoint): (network, description, multiple)."""
    import gankit

    loaded = gankit.load(run, device=device)
    if not loaded.is_translator or loaded.objective.scale != 1:
        sys.exit(f"{run}: needs a same-size translator (siamese, cyclegan, pix2pix)")
    objective = loaded.objective

    def translate(images: torch.Tensor) -> torch.Tensor:
        return objective.translate(images, loaded.network)

    channels = objective.input_channels
    if channels != 3:
        sys.exit(f"{run}: the benchmark image is RGB, this translator takes {channels} channels")
    return translate, f"trained {loaded.family} from {run}", objective.input_multiple


@torch.no_grad()
def calibrate_statistics(net: nn.Module, image: np.ndarray, passes: int = 4, side: int = 256):
    """Set the norm layers' running statistics to averages over random crops of ``image``:
    pass i (of 4 crops) gets momentum 1 / (i + 1), making the result their plain mean (an
    explicit momentum, because instance norm treats ``momentum=None`` as 0, not cumulative)."""
    norms = [m for m in net.modules() if getattr(m, "track_running_stats", False)]
    rng = np.random.default_rng(1)
    net.train()
    for i in range(passes):
        for norm in norms:
            norm.momentum = 1.0 / (i + 1)
        batch = []
        for _ in range(4):
            y = rng.integers(0, max(1, image.shape[0] - side + 1))
            x = rng.integers(0, max(1, image.shape[1] - side + 1))
            batch.append(image[y : y + side, x : x + side].transpose(2, 0, 1))
        net(torch.from_numpy(np.stack(batch)).float() / 127.5 - 1)
    net.eval()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def seam_scores(
    result: np.ndarray, mode: str, tile: int, overlap: int, period: int
) -> dict[str, float]:
    """The seam scores of one result (see the module docstring for which lines each uses)."""
    height, width = result.shape[:2]
    own = plan_tiles(height, width, tile, overlap if mode == "overlap" else 0)
    shift = own.stride // 2 // 8 * 8  # keeps the phase of patterns of period 2, 4 or 8
    scores = {
        "seam_score": seam_score(result, own.tile, own.stride, offset=-own.margin),
        "seam_score_phase": seam_score(
            result, own.tile, own.stride, offset=-own.margin, period=period
        ),
        "seam_score_control": seam_score(result, own.tile, own.stride, offset=shift - own.margin),
    }
    blended = plan_tiles(height, width, tile, overlap)
    if mode != "grid":
        centre = -blended.margin + blended.tile - blended.overlap // 2
        centres = seam_score(result, blended.stride, blended.stride, offset=centre)
        scores["seam_score_band_centres"] = centres
    if mode == "whole":
        edges = seam_score(result, blended.tile, blended.stride, offset=-blended.margin)
        scores["seam_score_overlap_edges"] = edges
    return {name: round(value, 4) for name, value in scores.items()}


def run_one(args: argparse.Namespace) -> dict[str, Any]:
    """One (size, mode) run in this process: the JSON record."""
    torch.manual_seed(0)
    height, width = SIZES[args.size]
    image = synthetic_image(height, width)
    if args.run:
        net, description, multiple = trained_translator(args.run, args.device)
    else:
        net, description, multiple = build_network(args.net, args.width, args.blocks)
        calibrate_statistics(net, image)
    setup_rss = peak_rss_mb()
    started = time.perf_counter()
    overlap = args.overlap if args.mode == "overlap" else None
    result = translate_image(
        image,
        net,
        args.tile,
        mode=args.mode,
        overlap=overlap,
        multiple=multiple,
        batch_size=args.batch_size,
        device=args.device,
        progress=args.progress,
    )
    seconds = time.perf_counter() - started
    record = {
        "size": f"{width}x{height}",
        "mode": args.mode,
        "tile": args.tile,
        "overlap": overlap,
        "megapixels_per_s": round(height * width / 1e6 / seconds, 3),
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "setup_rss_mb": round(setup_rss, 1),
    }
    record |= seam_scores(result, args.mode, args.tile, args.overlap, period=multiple)
    record["seam_period"] = multiple
    return {
        "benchmark": "translate_speed",
        **record,
        "network": description,
        **machine(args.device),
    }


def print_table(records: list[dict[str, Any]]) -> None:
    names = ["size", "mode", "MP/s", "seconds", "peak MB", "setup MB", "seam", "phase"]
    print("\n" + " ".join(f"{name:>9}" for name in [*names, "control", "centres"]))
    for r in records:
        centres = r.get("seam_score_band_centres")
        cells = [
            r["size"],
            r["mode"],
            f"{r['megapixels_per_s']:.3f}",
            f"{r['seconds']:.1f}",
            f"{r['peak_rss_mb']:.0f}",
            f"{r['setup_rss_mb']:.0f}",
            f"{r['seam_score']:.3f}",
            f"{r['seam_score_phase']:.3f}",
            f"{r['seam_score_control']:.3f}",
            "" if centres is None else f"{centres:.3f}",
        ]
        print(" ".join(f"{cell:>9}" for cell in cells))
    if records:
        print(f"network: {records[0]['network']}; peak MB: ru_maxrss of each run's own process")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1024 x 768 only, adds whole mode")
    parser.add_argument("--big", action="store_true", help="also 8192 x 8192")
    parser.add_argument("--net", choices=("siamese", "cyclegan", "small"), default="siamese")
    parser.add_argument("--run", help="a trained translator's run folder instead of --net")
    parser.add_argument("--width", type=int, default=16, help="the network's first width")
    parser.add_argument("--blocks", type=int, default=6, help="the network's residual blocks")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0: torch's choice")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--one", nargs=2, metavar=("SIZE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:  # a child: one run, one JSON line
        args.size, args.mode = args.one
        print(json.dumps(run_one(args)), flush=True)
        return
    if args.quick:
        runs = [("quick", mode) for mode in ("grid", "overlap", "whole")]
    else:
        runs = [("hd", "grid"), ("hd", "overlap")]
        runs += [("big", "grid"), ("big", "overlap")] if args.big else []
    forwarded = [a for a in sys.argv[1:] if a not in ("--quick", "--big")]
    records = []
    for size, mode in runs:
        command = [
            sys.executable,
            "-m",
            "benchmarks.translate_speed",
            *forwarded,
            "--one",
            size,
            mode,
        ]
        child = subprocess.run(command, capture_output=True, text=True, env=os.environ, cwd=REPO)
        if child.returncode:
            sys.exit(f"{size} {mode} failed:\n{child.stderr}")
        records.append(json.loads(child.stdout.strip().splitlines()[-1]))
        print(json.dumps(records[-1]), flush=True)
    print_table(records)


if __name__ == "__main__":
    main()
