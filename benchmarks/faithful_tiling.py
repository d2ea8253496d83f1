"""Faithful tiling: tiled translation against one whole-image pass with per-image statistics.

    python -m benchmarks.faithful_tiling            # trains both runs when missing (~15 min)
    python -m benchmarks.faithful_tiling --cyclegan-run RUN --siamese-run RUN

Two trained translators, each on a 1024 x 768 image:

- CycleGAN on digits -> edges (``gankit train cyclegan --data digits-edges --set
  data.paired=false``, the preset's 2,000 steps, trained when ``--cyclegan-run`` is missing): a
  page of 560 held-out bundled digits (the last ones, which the unpaired A domain never saw),
  32 px each as in training, on a 37 px grid so that digit boundaries do not line up with tile
  borders (they would hide seams in black gaps).
- The Siamese GAN of the HD example (``configs/siamese/photos-textures.yaml``; trained here with
  ``--siamese-steps``, 1,500 by default instead of the preset's 3,000, when ``--siamese-run`` is
  missing): the HD example's collage of the six demo photos at 1024 x 768.

For each: the reference is ``mode="whole"`` with ``stats="image"`` (every norm layer normalises
the image by its own statistics, as per-image layers train). Then ``overlap`` mode (``--tile``,
``--overlap``) with ``stats="image"`` (image-level statistics estimated from the tiles,
:mod:`gankit.translate.statistics`) and with ``stats="running"``, and whole mode with running
statistics. Reported per output: PSNR (dB, uint8 outputs, peak 255) against the reference, the
seam score (:func:`gankit.translate.seam_score` on the tiling's own edges) and, as its control,
the reference's score on the same lines (the plain score is not 1 on these outputs even without
tiles: content and the networks' stride-phase patterns) and the ratio of the two; the same with
``period`` :data:`PERIOD` (``seam_score_phase``: border pairs compared only with pairs at the same
position modulo the networks' total stride, 4 for both, which cancels their phase-locked
patterns); for running statistics also the PSNR against whole mode with running statistics (the
tiling alone); seconds.
One thread (``torch.set_num_threads(1)``).
Writes ``benchmarks/results/faithful_tiling.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "benchmarks" / "results" / "faithful_tiling.json"
GANKIT = str(Path(sys.executable).parent / "gankit")
SIZE = (768, 1024)  # height, width
PERIOD = 4  # total stride of both generators (two stride-2 downsamplings)


def psnr(output: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB of two uint8 images of one shape (inf when equal)."""
    mse = np.mean((output.astype(np.float64) - reference.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def digits_page() -> np.ndarray:
    """(768, 1024, 1) uint8: held-out bundled digits, 32 px, on a 37 px grid, black between."""
    from gankit.config import DataConfig
    from gankit.data.sources import mnist_bundled

    digits = mnist_bundled(DataConfig(source="mnist-bundled", resolution=32, channels=1)).images
    rows, cols = SIZE[0] // 37, SIZE[1] // 37
    page = np.zeros((*SIZE, 1), np.uint8)
    chosen = digits[-rows * cols :, 0].numpy()
    for i, digit in enumerate(chosen):
        y, x = 3 + 37 * (i // cols), 3 + 37 * (i % cols)
        page[y : y + 32, x : x + 32, 0] = digit
    return page


def photo_collage() -> np.ndarray:
    sys.path.insert(0, str(REPO / "scripts"))
    from hd_example import collage

    return np.asarray(collage(SIZE[1], SIZE[0]))


def train(family: str, data: str, run: Path, overrides: list[str]) -> None:
    sets = [item for override in overrides for item in ("--set", override)]
    command = [GANKIT, "train", family, "--data", data, "--out", str(run), *sets]
    subprocess.run(command, check=True, env={"OMP_NUM_THREADS": "1", **_env()})


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def measure(run: Path, image: np.ndarray, tile: int, overlap: int) -> dict[str, Any]:
    import gankit
    from gankit.translate import plan_tiles, seam_score

    loaded = gankit.load(run)
    plan = plan_tiles(*image.shape[:2], tile, overlap)

    def seams(output: np.ndarray, period: int = 1) -> float:
        score = seam_score(output, plan.tile, plan.stride, offset=-plan.margin, period=period)
        return round(score, 4)

    def timed(**kwargs: Any) -> tuple[np.ndarray, float]:
        start = time.perf_counter()
        output = loaded.translate_image(image, **kwargs)
        return output, round(time.perf_counter() - start, 1)

    reference, seconds = timed(mode="whole", stats="image")
    reference_plain, reference_phase = seams(reference), seams(reference, PERIOD)
    record: dict[str, Any] = {
        "run": str(run),
        "network": type(loaded.network).__name__,
        "image": f"{image.shape[1]}x{image.shape[0]}x{image.shape[2]}",
        "tile": tile,
        "overlap": overlap,
        "reference": {"mode": "whole", "stats": "image", "seconds": seconds,
                      "seam_score_on_tile_lines": reference_plain,
                      "seam_score_phase_on_tile_lines": reference_phase},
        "results": [],
    }  # fmt: skip
    whole_running = None
    for mode, stats in (("whole", "running"), ("overlap", "image"), ("overlap", "running")):
        tiling = {"tile": tile, "overlap": overlap} if mode == "overlap" else {}
        output, seconds = timed(mode=mode, stats=stats, **tiling)
        plain, phase = seams(output), seams(output, PERIOD)
        result = {
            "mode": mode, "stats": stats, "psnr_vs_reference_db": round(psnr(output, reference), 2),
            "seam_score": plain,
            "seam_score_over_reference": round(plain / reference_plain, 4),
            "seam_score_phase": phase,
            "seam_score_phase_over_reference": round(phase / reference_phase, 4),
            "seconds": seconds,
        }  # fmt: skip
        if whole_running is None:
            whole_running = output
        elif stats == "running":
            result["psnr_vs_whole_running_db"] = round(psnr(output, whole_running), 2)
        record["results"].append(result)
        print(json.dumps(record["results"][-1]), flush=True)
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cyclegan-run", default=str(REPO / "runs" / "faithful-cyclegan"))
    parser.add_argument("--siamese-run", default=str(REPO / "runs" / "faithful-siamese"))
    parser.add_argument("--siamese-steps", type=int, default=1500)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cyclegan, siamese = Path(args.cyclegan_run), Path(args.siamese_run)
    if not (cyclegan / "export").is_dir():
        train("cyclegan", "digits-edges", cyclegan, ["data.paired=false"])
    if not (siamese / "export").is_dir():
        train("siamese", "photos-textures", siamese, [f"train.steps={args.siamese_steps}"])
    records = {
        "cyclegan": measure(cyclegan, digits_page(), args.tile, args.overlap),
        "siamese": measure(siamese, photo_collage(), args.tile, args.overlap),
    }
    from benchmarks.common import machine

    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps({**records, "machine": machine()}, indent=1) + "\n")
    print(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
