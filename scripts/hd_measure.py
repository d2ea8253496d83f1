"""Measured ``gankit`` runs and figure helpers shared by the HD scripts (hd_example.py,
hd_painting.py).

Every command runs in a fresh process; what is recorded is its wall time and its peak resident
memory (``os.wait4``'s ``ru_maxrss`` of that process: the Python and torch runtime, the network,
the input and output images and the tiles in flight), optionally under an address-space limit
(``RLIMIT_AS``), so that a pass that would not fit fails inside the child with its own one-line
error instead of taking the machine's memory.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gankit.translate import plan_tiles, seam_score

GANKIT = str(Path(sys.executable).parent / "gankit")  # the CLI of this environment
FIGURE_WIDTH = 1024  # px: the reduced before/after images
PANEL_GAP = 8  # px of white between the panels of a strip


@dataclass(frozen=True)
class Measured:
    """One finished command."""

    seconds: float  # wall time
    peak_rss_mb: float  # the process's maximum resident set size
    exit_code: int
    error: str  # the last line it wrote to stderr when it failed (its one-line error), else ""


def run_measured(
    command: list[str], *, memory_limit_mb: int | None = None, check: bool = True
) -> Measured:
    """Run ``command`` in a fresh process and measure it.

    memory_limit_mb: the child's address-space limit (``RLIMIT_AS``), None = none. check: a
    non-zero exit raises SystemExit naming the command; with False it is returned (stderr is
    then kept in a temporary file so that its last line can be reported)."""

    def limit() -> None:  # runs in the child, before exec
        size = memory_limit_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (size, size))

    with tempfile.TemporaryFile("w+") as errors:
        start = time.perf_counter()
        process = subprocess.Popen(
            command, stderr=None if check else errors, preexec_fn=limit if memory_limit_mb else None
        )
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        if code != 0 and check:
            raise SystemExit(f"failed ({code}): {' '.join(command)}")
        errors.seek(0)
        lines = [line.strip() for line in errors.read().replace("\r", "\n").splitlines()]
    last = next((line for line in reversed(lines) if line), "") if code else ""
    return Measured(seconds, usage.ru_maxrss / 1024, code, last)


def read_rgb(path: Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB."""
    with Image.open(path) as img:
        return np.array(img.convert("RGB"))


def tile_seam(pixels: np.ndarray, tile: int, overlap: int, period: int = 1) -> float:
    """The seam score (:func:`gankit.translate.seam_score`; ``period`` 1: plain) of an
    (H, W, C) image on the tile borders of ``gankit translate --tile TILE`` (overlap 0: grid
    mode) or ``--overlap``."""
    plan = plan_tiles(pixels.shape[0], pixels.shape[1], tile, overlap)
    return seam_score(pixels, plan.tile, plan.stride, offset=-plan.margin, period=period)


def translate_measured(
    run: Path,
    source: Path,
    out: Path,
    mode: str,
    tile: int,
    overlap: int,
    *,
    memory_limit_mb: int | None = None,
    seam_period: int = 1,
) -> dict[str, Any]:
    """``gankit translate RUN SOURCE --out OUT --mode MODE`` (grid and overlap: ``--tile``;
    overlap: ``--overlap``) in a fresh process, measured.

    Returns mode, tile, overlap, output_size, seconds, megapixels_per_s, peak_rss_mb,
    seam_score (:func:`tile_seam` with ``seam_period`` on the mode's own tile borders; whole
    mode: on overlap mode's) and result (the PNG written). With ``memory_limit_mb`` a failure
    is not raised: the dict is then mode, skipped (the command's one-line error), seconds and
    peak_rss_mb."""
    options = [] if mode == "whole" else ["--tile", str(tile)]
    options += ["--overlap", str(overlap)] if mode == "overlap" else []
    command = [GANKIT, "translate", str(run), str(source), "--out", str(out), "--mode", mode]
    measured = run_measured(
        command + options, memory_limit_mb=memory_limit_mb, check=memory_limit_mb is None
    )
    if measured.exit_code:
        return {
            "mode": mode,
            "skipped": measured.error or f"exit code {measured.exit_code}",
            "seconds": round(measured.seconds, 1),
            "peak_rss_mb": round(measured.peak_rss_mb, 1),
        }
    result = out / f"{source.stem}.png"
    pixels = read_rgb(result)
    height, width = pixels.shape[:2]
    return {
        "mode": mode,
        "tile": tile,
        "overlap": overlap if mode == "overlap" else 0,
        "output_size": f"{width}x{height}",
        "seconds": round(measured.seconds, 1),
        "megapixels_per_s": round(width * height / 1e6 / measured.seconds, 3),
        "peak_rss_mb": round(measured.peak_rss_mb, 1),
        "seam_score": round(
            tile_seam(pixels, tile, 0 if mode == "grid" else overlap, seam_period), 4
        ),
        "result": str(result),
    }


def save_reduced(image: Image.Image, path: Path, width: int = FIGURE_WIDTH) -> None:
    """``image`` resized (Lanczos) to ``width`` px wide, keeping its aspect, saved as JPEG."""
    small = image.convert("RGB").resize(
        (width, width * image.height // image.width), Image.Resampling.LANCZOS
    )
    small.save(path, quality=88)


def strip(panels: list[Image.Image]) -> Image.Image:
    """Panels of one height side by side, PANEL_GAP px of white between them."""
    width = sum(panel.width for panel in panels) + PANEL_GAP * (len(panels) - 1)
    canvas = Image.new("RGB", (width, panels[0].height), "white")
    left = 0
    for panel in panels:
        canvas.paste(panel.convert("RGB"), (left, 0))
        left += panel.width + PANEL_GAP
    return canvas
