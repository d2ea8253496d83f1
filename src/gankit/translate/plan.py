"""The geometry of tiled translation: where the tiles lie, how the image is padded, the
blending windows, and the part of each tile that counts for image statistics (used by
:mod:`gankit.translate.tiling`, which explains the method)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from gankit.errors import ConfigError
from gankit.translate.statistics import Region


class TilingError(ConfigError, ValueError):
    """A bad argument to the tiling functions (one line, naming the argument)."""


# --------------------------------------------------------------------------------------------
# The tiling plan: where tiles lie and how the image is padded
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TilePlan:
    """A grid of ``tile`` x ``tile`` tiles with stride ``tile - overlap`` over a padded image.

    Coordinates are input pixels of the padded image: padded pixel p is image pixel
    ``p - margin`` (reflected into the image when outside it). Tile (r, c) covers padded rows
    ``[row_origins[r], row_origins[r] + tile)`` and the same for columns; the last tile of each
    axis ends exactly at the padded size, which is at least ``size + 2 * margin``.
    """

    height: int  # image rows H
    width: int  # image columns W
    tile: int  # tile side T
    overlap: int  # pixels shared by neighbouring tiles (0: grid)
    margin: int  # reflected pixels before the image on the top and the left (= overlap)

    @property
    def stride(self) -> int:
        return self.tile - self.overlap

    def _count(self, size: int) -> int:
        covered = size + 2 * self.margin
        return 1 if covered <= self.tile else math.ceil((covered - self.tile) / self.stride) + 1

    @property
    def rows(self) -> int:
        return self._count(self.height)

    @property
    def cols(self) -> int:
        return self._count(self.width)

    @property
    def row_origins(self) -> np.ndarray:
        return np.arange(self.rows) * self.stride

    @property
    def col_origins(self) -> np.ndarray:
        return np.arange(self.cols) * self.stride

    @property
    def padded_height(self) -> int:
        return (self.rows - 1) * self.stride + self.tile

    @property
    def padded_width(self) -> int:
        return (self.cols - 1) * self.stride + self.tile


def plan_tiles(height: int, width: int, tile: int, overlap: int = 0) -> TilePlan:
    """The tiling of an H x W image used by :func:`translate_image` (``overlap`` 0: grid mode).

    The seams of the result lie at the tile edges, in image coordinates
    ``origin - margin`` and ``origin - margin + tile`` (times the scale): pass
    ``offset=-plan.margin`` to :func:`gankit.translate.seams.seam_score`.
    """
    _check_tile(tile, overlap)
    return TilePlan(height, width, tile, overlap, margin=overlap)


def reflect_indices(positions: np.ndarray, size: int) -> np.ndarray:
    """Indices into an axis of ``size`` pixels for any integer ``positions``, by reflection
    about the first and last pixel without repeating them (NumPy's "reflect"), repeated as
    often as needed: for size 3, positions -2..5 -> 2 1 0 1 2 1 0 1. Size 1 -> all 0."""
    if size == 1:
        return np.zeros_like(positions)
    period = 2 * (size - 1)
    folded = np.mod(positions, period)
    return np.where(folded >= size, period - folded, folded)


# --------------------------------------------------------------------------------------------
# Blending weights
# --------------------------------------------------------------------------------------------


def taper_window(tile: int, overlap: int, scale: int = 1) -> np.ndarray:
    """The 1-D blending window over a tile's output: (tile * scale,) float64 in (0, 1].

    Flat (1) in the middle; over the ``overlap * scale`` output pixels at each end it rises as
    a raised cosine, ``sin^2(pi/2 * (i + 0.5) / R)`` at pixel i of a ramp of R pixels. The
    falling ramp of one tile and the rising ramp of the next tile lie on the same R pixels and
    add up to ``cos^2 + sin^2 = 1``, so on the inside of the tiling the weights already sum to
    one (the division in :func:`translate_image` then only corrects float rounding and the
    outer ramps, which lie in the padding). The half-pixel offset keeps every weight positive,
    so the weight sum is never zero. ``overlap`` 0: all ones (grid mode).
    """
    window = np.ones(tile * scale)
    ramp = overlap * scale
    if ramp:
        rising = np.sin(0.5 * np.pi * (np.arange(ramp) + 0.5) / ramp) ** 2
        window[:ramp] = rising
        window[-ramp:] = rising[::-1]
    return window


def axis_weight_sum(start: int, stop: int, origins: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Sum of the windows of the tiles at output ``origins`` over output pixels [start, stop):
    (stop - start,) float64. The 2-D weight sum of a separable window on a product grid is the
    outer product of the two axes' sums, so this is all the normaliser needs."""
    total = np.zeros(stop - start)
    for origin in origins:
        lo, hi = max(start, origin), min(stop, origin + len(window))
        if lo < hi:
            total[lo - start : hi - start] += window[lo - origin : hi - origin]
    return total


def per_tile_normalisation(translator: Any) -> list[str]:
    """Names of the layers of a torch translator that would normalise each tile with its own
    statistics whatever ``stats`` says (group norm); [] for other callables. Batch and instance
    norm layers are given image-level or running statistics (module docstring)."""
    if not isinstance(translator, nn.Module):
        return []
    return [name or type(module).__name__ for name, module in translator.named_modules()
            if isinstance(module, nn.GroupNorm)]  # fmt: skip


def owned_regions(plan: TilePlan, row: int, columns: np.ndarray) -> list[Region]:
    """The part of each tile (row ``row``, column indices ``columns``) that it owns when image
    statistics are accumulated, in the tile's own pixels (top, bottom, left, right): tiles own
    the middle of each overlap band (``overlap // 2`` from the tile's start to ``stride`` past
    that; the first and last tiles to their edges), so the owned parts partition the image;
    the reflected padding outside the image is owned by none."""

    def axis(index: int, count: int, size: int) -> tuple[int, int]:
        origin = index * plan.stride
        lo = 0 if index == 0 else plan.overlap // 2
        hi = plan.tile if index == count - 1 else plan.overlap // 2 + plan.stride
        lo, hi = max(lo, plan.margin - origin), min(hi, plan.margin + size - origin)
        return lo, max(lo, hi)

    top, bottom = axis(row, plan.rows, plan.height)
    return [(top, bottom, *axis(int(c), plan.cols, plan.width)) for c in columns]


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_positive(name: str, value: Any) -> None:
    if not _is_int(value) or value < 1:
        raise TilingError(f"{name}={value!r}: must be an integer >= 1")


def _check_tile(tile: Any, overlap: Any) -> None:
    _check_positive("tile", tile)
    if not _is_int(overlap) or not 0 <= overlap <= tile // 2:
        raise TilingError(
            f"overlap={overlap!r}: must be an integer in [0, tile // 2] = [0, {tile // 2}] "
            "(a pixel may then lie in at most two tiles per axis, whose ramps sum to one)"
        )


def _resolve_overlap(mode: str, tile: Any, overlap: Any) -> int:
    """The overlap a tiled mode uses: default tile // 4, at least 1, in overlap mode."""
    if mode == "grid":
        if overlap not in (None, 0):
            raise TilingError(f"overlap={overlap!r}: grid mode has no overlap; use mode='overlap'")
        return 0
    _check_positive("tile", tile)
    if tile < 2:
        raise TilingError(f"tile={tile}: overlap mode needs tile >= 2; use mode='grid'")
    overlap = max(1, tile // 4) if overlap is None else overlap
    if _is_int(overlap) and overlap == 0:
        raise TilingError("overlap=0: overlap mode needs overlap >= 1; use mode='grid'")
    _check_tile(tile, overlap)
    return int(overlap)
