"""The seam score: how much stronger an image changes across tile borders than elsewhere.

For an (H, W) or (H, W, C) image made of tiles, the *border lines* of one axis are the tile
edges ``(offset + k * stride) * scale`` and ``(offset + k * stride + tile) * scale`` for every
integer k, in output pixels, that lie strictly inside the axis (0 < b < size). With
``tile == stride`` (grid mode, offset 0) these are the multiples of ``stride * scale``; with
overlapping tiles they are both edges of every overlap band. A line at column b *straddles*
the horizontal pixel pair (x = b - 1, x = b) of every row; a line at row b the vertical pair
(y = b - 1, y = b) of every column.

    seam_score = mean over border pairs (p, q) of sum_c (I[p, c] - I[q, c])^2
                 / mean over all other adjacent pairs (p, q) of sum_c (I[p, c] - I[q, c])^2

where the pairs are all horizontally adjacent (x, x+1) and vertically adjacent (y, y+1) pixel
pairs, each counted once, split into those straddling a border line of their axis and the rest
(with ``period`` p > 1, only those of the rest whose second pixel lies, modulo p, where a
border line of its axis lies).
About 1: the borders are as smooth as the image elsewhere (seams invisible); above 1: visible
seams. A pattern with the period of a network's stride that is phase-locked to the tiling
(nearest or transposed-convolution upsampling, with tiles a multiple of the stride) moves the
score away from 1 without any seam: pass ``period`` (the stride) to compare border pairs only
with pairs of the same phase, or compare with the same score on lines that are no tile border
(the tiling shifted by a multiple of that period) or on a whole-image pass. NaN when either set
of pairs is empty (no border inside the image, or every pair on one); inf when the image is flat
off the borders but not on them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gankit.translate.plan import TilingError, _check_positive

_CHUNK_ROWS = 512  # rows read at a time, so an 8192 x 8192 image needs no float copy


def border_lines(size: int, tile: int, stride: int, scale: int = 1, offset: int = 0) -> np.ndarray:
    """Sorted positions b, 0 < b < size, of the tile edges along one axis of ``size`` output
    pixels: ``(offset + k * stride) * scale`` and ``(offset + k * stride + tile) * scale``."""
    first = (-offset - tile) // stride - 1
    last = (size // scale - offset) // stride + 1
    origins = offset + stride * np.arange(first, last + 1)
    lines = np.unique(np.concatenate([origins, origins + tile]) * scale)
    return lines[(lines > 0) & (lines < size)]


def _pair_masks(size: int, lines: np.ndarray, period: int) -> tuple[np.ndarray, np.ndarray]:
    """Two (size - 1,) bool masks over the pairs (i, i + 1) of one axis: on a border (i + 1 is
    a line) and off the borders (the others whose i + 1 has a line's phase modulo ``period``)."""
    second = np.arange(1, size)
    border = np.isin(second, lines)
    return border, ~border & np.isin(second % period, lines % period)


def seam_score(
    image: Any, tile: int, stride: int, scale: int = 1, *, offset: int = 0, period: int = 1
) -> float:
    """Mean squared finite difference across tile borders / the same off the borders.

    ``image``: (H, W) or (H, W, C), any real dtype (a PIL image is read as an array); all
    channels count. ``tile``, ``stride``, ``offset``: the tiling in input pixels (for
    :func:`gankit.translate.translate_image`: ``plan.tile, plan.stride, offset=-plan.margin``
    of :func:`gankit.translate.plan_tiles`); ``scale``: output pixels per input pixel.
    ``period`` > 1 compares the border pairs only with off-border pairs at the same position
    modulo ``period`` as some border line (use the network's total stride to cancel its
    phase-locked patterns); 1 (the default) compares with all other pairs. See the module
    docstring for exactly which pairs count.
    """
    for name, value in (("tile", tile), ("stride", stride), ("scale", scale), ("period", period)):
        _check_positive(name, value)
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or not np.issubdtype(pixels.dtype, np.number):
        raise TilingError(
            f"image shape {pixels.shape} dtype {pixels.dtype}: expected a real "
            "(H, W) or (H, W, C) array"
        )
    height, width = pixels.shape[:2]
    on_x, off_x = _pair_masks(width, border_lines(width, tile, stride, scale, offset), period)
    on_y, off_y = _pair_masks(height, border_lines(height, tile, stride, scale, offset), period)
    border_sum = other_sum = 0.0
    border_count = other_count = 0
    for top in range(0, height, _CHUNK_ROWS):
        block = pixels[top : top + _CHUNK_ROWS + 1].astype(np.float64)  # one row of overlap
        rows = min(_CHUNK_ROWS, height - top)
        horizontal = (np.diff(block[:rows], axis=1) ** 2).sum(axis=2)  # (rows, W - 1)
        vertical = (np.diff(block, axis=0) ** 2).sum(axis=2)  # (rows or rows - 1, W)
        on_row, off_row = on_y[top : top + len(vertical)], off_y[top : top + len(vertical)]
        border_sum += horizontal[:, on_x].sum() + vertical[on_row].sum()
        other_sum += horizontal[:, off_x].sum() + vertical[off_row].sum()
        border_count += rows * on_x.sum() + on_row.sum() * width
        other_count += rows * off_x.sum() + off_row.sum() * width
    if border_count == 0 or other_count == 0:
        return float("nan")
    border_mean = border_sum / border_count
    other_mean = other_sum / other_count
    if other_mean == 0:
        return float("inf") if border_mean > 0 else float("nan")
    return float(border_mean / other_mean)
