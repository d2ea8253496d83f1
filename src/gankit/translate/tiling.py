"""Apply a tile translator to an image of any size: tiling, blending and streaming.

A translator G maps tiles (B, C_in, T, T) in [-1, 1] to (B, C_out, T*s, T*s) in [-1, 1]. To
translate an (H, W, C_in) image, :func:`translate_image`

1. pads the image by reflection (virtually: padded pixels are read through reflected indices,
   so no padded copy of the image is made) so that every tile is full size and, in ``overlap``
   mode, so that the image's own border lies ``overlap`` pixels inside the first and last tiles;
2. cuts a regular grid of tiles with stride ``tile - overlap`` and runs them through G,
   ``batch_size`` tiles at a time, one row of tiles after another;
3. blends the overlapping outputs: every output pixel is the weighted mean of the translated
   values that the tiles covering it give for that pixel,
   ``out(y, x) = sum_t w_t(y, x) G_t(y, x) / sum_t w_t(y, x)``, with ``w_t`` a separable window
   (:func:`taper_window`) that falls towards the tile's edges, where a convolutional network
   sees padding instead of the image and its output is least trustworthy. Division by the
   summed weights makes the effective weights ``w_t / sum w`` add up to one at every pixel,
   image borders and images smaller than a tile included;
4. streams: only the output rows that the current row of tiles can still change are held as
   float32 sums (a band of ``tile * scale`` rows by the padded width); finished rows are
   divided, quantised and written into the result (a preallocated array or ``np.memmap``), so
   the extra memory is O(tile * W * scale^2 * C), never a float copy of the whole image.

What is blended is the translator's *output*, never its statistics: a norm layer that
normalised each tile by its own statistics would give every tile its own brightness and
contrast (blending hides such jumps over the overlap, it does not remove them). For a torch
translator (``network``) the tiled modes therefore give every batch and instance norm layer
statistics that are the same for all tiles, by ``stats`` (:mod:`gankit.translate.statistics`):
the whole image's, estimated in passes over the tiles and frozen (``image``), or the running
averages of training (``running``); whole mode uses each image's own (``image``), exactly as
a per-image layer trains. Group norm has no such treatment: :func:`per_tile_normalisation`
lists it, and the tiled modes refuse it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from gankit.translate import statistics
from gankit.translate.plan import (  # noqa: F401  (re-exported: the public tiling names)
    TilePlan,
    TilingError,
    _check_positive,
    _check_tile,
    _resolve_overlap,
    axis_weight_sum,
    owned_regions,
    per_tile_normalisation,
    plan_tiles,
    reflect_indices,
    taper_window,
)

Mode = Literal["grid", "overlap", "whole"]
MODES: tuple[str, ...] = ("grid", "overlap", "whole")
Translator = Callable[[torch.Tensor], Any]  # (B, C_in, t, t) -> (B, C_out, t*s, t*s)
_WHOLE_CHUNK_ROWS = 256  # rows of the whole-image output converted to uint8 at a time


# --------------------------------------------------------------------------------------------
# Argument checks and pixel conversions
# --------------------------------------------------------------------------------------------


def as_pixels(image: Any) -> np.ndarray:
    """An image as (H, W, C) uint8: a NumPy array of that form (or a memmap) is returned as it
    is; a PIL image is read ("L" gives C = 1, "RGB" C = 3, other modes are converted to RGB)."""
    if hasattr(image, "getbands") and hasattr(image, "convert"):  # a PIL image
        array = np.asarray(image if image.mode in ("L", "RGB") else image.convert("RGB"))
        image = array[:, :, None] if array.ndim == 2 else array
    if not isinstance(image, np.ndarray):
        raise TilingError(
            f"image: a {type(image).__name__}; expected a (H, W, C) uint8 "
            "NumPy array or a PIL image"
        )
    if image.dtype != np.uint8:
        raise TilingError(f"image dtype {image.dtype}: expected uint8 (values 0..255)")
    if image.ndim != 3 or min(image.shape) < 1:
        raise TilingError(
            f"image shape {tuple(image.shape)}: expected (H, W, C) with H, W, "
            "C >= 1 (add a channel axis to a grayscale array: image[..., None])"
        )
    return image


def _to_float(pixels: np.ndarray) -> np.ndarray:
    """(h, w, C) uint8 -> (C, h, w) float32 in [-1, 1]."""
    return np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32) / 127.5 - 1.0


def _from_float(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """(C, h, w) float32 in [-1, 1], overwritten -> (h, w, C) of ``dtype``: uint8 rounded and
    clipped (as :func:`gankit.runfolder.images.to_uint8`; in place, to spare temporaries), float32
    as it is."""
    values = values.transpose(1, 2, 0)
    if dtype != np.uint8:
        return values.astype(dtype)
    values += 1.0
    values *= 127.5
    np.rint(values, out=values)
    return np.clip(values, 0, 255, out=values).astype(np.uint8)


def _run(translator: Translator, tiles: np.ndarray, device: Any, side: int) -> torch.Tensor:
    """tiles: (B, C_in, t, t) float32 -> the translator's (B, C_out, side, side) float32."""
    inputs = torch.from_numpy(tiles).to(device)
    with torch.inference_mode():
        outputs = torch.as_tensor(translator(inputs)).float()
    expected = (len(tiles), "C_out", side, side)
    if outputs.ndim != 4 or outputs.shape[0] != len(tiles) or outputs.shape[2:] != (side, side):
        raise TilingError(
            f"translator output shape {tuple(outputs.shape)}: expected {expected} (is scale right?)"
        )
    return outputs


def _output_array(out: np.ndarray | None, shape: tuple[int, int, int]) -> np.ndarray:
    if out is None:
        return np.empty(shape, np.uint8)
    if tuple(out.shape) != shape or out.dtype not in (np.uint8, np.float32):
        raise TilingError(
            f"out: shape {tuple(out.shape)} dtype {out.dtype}; expected shape "
            f"{shape} and dtype uint8 (or float32 for values in [-1, 1])"
        )
    return out


# --------------------------------------------------------------------------------------------
# Tiled translation, one row of tiles at a time
# --------------------------------------------------------------------------------------------


class _Band:
    """The open output rows: weighted sums (C_out, rows, width) float32, rows starting at
    padded output row ``top``. Rows leave from the top when no later tile touches them."""

    def __init__(self, channels: int, rows: int, width: int) -> None:
        self.sums = np.zeros((channels, rows, width), np.float32)
        self.top = 0

    def add(self, x: int, weighted: np.ndarray) -> None:
        """Add one tile's weighted output (C_out, rows, side) at output column ``x``."""
        self.sums[:, :, x : x + weighted.shape[2]] += weighted

    def advance(self, count: int) -> None:
        """Drop the first ``count`` rows (written out): the band moves ``count`` rows down."""
        self.sums[:, : self.sums.shape[1] - count] = self.sums[:, count:]
        self.sums[:, self.sums.shape[1] - count :] = 0
        self.top += count


def _row_tiles(
    pixels: np.ndarray, plan: TilePlan, row: int, batch_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(column indices, tiles (B, C_in, T, T) float32) for one row of tiles, ``batch_size``
    tiles at a time, read from a strip (C_in, T, padded width) of the image."""
    top = row * plan.stride
    image_rows = reflect_indices(np.arange(top, top + plan.tile) - plan.margin, plan.height)
    image_columns = reflect_indices(np.arange(plan.padded_width) - plan.margin, plan.width)
    strip = _to_float(pixels[image_rows][:, image_columns])
    for first in range(0, plan.cols, batch_size):
        columns = np.arange(first, min(first + batch_size, plan.cols))
        x0 = plan.col_origins[columns]
        yield columns, np.stack([strip[:, :, x : x + plan.tile] for x in x0])


def _translated_row(
    pixels: np.ndarray,
    translator: Translator,
    plan: TilePlan,
    row: int,
    scale: int,
    window_2d: torch.Tensor,
    batch_size: int,
    device: Any,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(column origins, weighted outputs (B, C_out, T*s, T*s) float32) for one row of tiles."""
    for columns, tiles in _row_tiles(pixels, plan, row, batch_size):
        outputs = _run(translator, tiles, device, plan.tile * scale)
        yield plan.col_origins[columns], (outputs * window_2d.to(outputs.device)).cpu().numpy()


def _image_statistics(
    pixels: np.ndarray,
    translator: Translator,
    network: nn.Module,
    stats: str,
    plan: TilePlan,
    scale: int,
    batch_size: int,
    device: Any,
    advance: Callable[[int], None],
) -> statistics.Frozen:
    """The whole image's statistics for every norm layer of ``network`` taking image
    statistics, estimated from the tiles of ``plan`` (see :mod:`gankit.translate.statistics`)."""

    def run_tiles(collector: statistics.StatisticsCollector) -> None:
        for row in range(plan.rows):
            for columns, tiles in _row_tiles(pixels, plan, row, batch_size):
                collector.set_regions(owned_regions(plan, row, columns), (plan.tile,) * 2)
                with contextlib.suppress(statistics.StopForward):
                    _run(translator, tiles, device, plan.tile * scale)
                advance(len(columns))

    return statistics.estimate_image_statistics(network, stats, run_tiles)


def _write_finished(
    out: np.ndarray,
    top: int,
    sums: np.ndarray,
    plan: TilePlan,
    scale: int,
    window: np.ndarray,
    column_weights: np.ndarray,
) -> None:
    """Divide finished padded output rows [top, top + len) by the weight sums and write the
    part inside the image into ``out``."""
    first, last = plan.margin * scale, (plan.margin + plan.height) * scale
    lo, hi = max(top, first), min(top + sums.shape[1], last)
    if lo >= hi:
        return
    step, side = plan.stride * scale, plan.tile * scale
    touching = np.arange(max(0, (lo - side) // step), min(plan.rows - 1, hi // step) + 1)
    row_weights = axis_weight_sum(lo, hi, touching * step, window)
    columns = slice(first, (plan.margin + plan.width) * scale)
    weight_sums = np.outer(row_weights, column_weights).astype(np.float32)
    normalised = sums[:, lo - top : hi - top, columns] / weight_sums
    out[lo - first : hi - first] = _from_float(normalised, out.dtype)


def _translate_tiled(
    pixels: np.ndarray,
    translator: Translator,
    plan: TilePlan,
    scale: int,
    batch_size: int,
    device: Any,
    advance: Callable[[int], None],
    out: np.ndarray | None,
) -> np.ndarray:
    side, step = plan.tile * scale, plan.stride * scale
    window = taper_window(plan.tile, plan.overlap, scale)
    window_2d = torch.from_numpy(np.outer(window, window).astype(np.float32)).to(device)
    column_weights = axis_weight_sum(
        plan.margin * scale, (plan.margin + plan.width) * scale, plan.col_origins * scale, window
    )
    band = None
    for r in range(plan.rows):
        row = _translated_row(pixels, translator, plan, r, scale, window_2d, batch_size, device)
        for xs, weighted in row:
            if band is None:  # C_out is known now
                channels = weighted.shape[1]
                band = _Band(channels, side, plan.padded_width * scale)
                out = _output_array(out, (plan.height * scale, plan.width * scale, channels))
            for x, tile_output in zip(xs, weighted, strict=True):
                band.add(x * scale, tile_output)
            advance(len(xs))
        # Rows above the next tile row's top are final; after the last row, all of them are.
        count = side if r == plan.rows - 1 else step
        _write_finished(out, band.top, band.sums[:, :count], plan, scale, window, column_weights)
        band.advance(count)
    return out


def _translate_whole(
    pixels: np.ndarray,
    translator: Translator,
    scale: int,
    multiple: int,
    device: Any,
    out: np.ndarray | None,
) -> np.ndarray:
    """One pass over the image padded by reflection (bottom, right) to multiples of
    ``multiple``. Holds the padded image and its translation in float32 on ``device``."""
    height, width = pixels.shape[:2]
    padded = (-(-height // multiple) * multiple, -(-width // multiple) * multiple)
    rows = reflect_indices(np.arange(padded[0]), height)
    columns = reflect_indices(np.arange(padded[1]), width)
    inputs = _to_float(pixels[rows][:, columns])[None]
    try:
        inputs = torch.from_numpy(inputs).to(device)
        with torch.inference_mode():
            outputs = torch.as_tensor(translator(inputs)).float()
    except (MemoryError, torch.OutOfMemoryError, RuntimeError) as error:
        if isinstance(error, RuntimeError) and "memory" not in str(error).lower():
            raise
        raise TilingError(
            f"mode='whole': a {padded[0]} x {padded[1]} pass does not fit in "
            f"memory on {device}; use mode='overlap'"
        ) from error
    expected = (1, "C_out", padded[0] * scale, padded[1] * scale)
    if outputs.ndim != 4 or outputs.shape[2:] != expected[2:]:
        raise TilingError(
            f"translator output shape {tuple(outputs.shape)}: expected {expected} (is scale right?)"
        )
    out = _output_array(out, (height * scale, width * scale, outputs.shape[1]))
    for top in range(0, height * scale, _WHOLE_CHUNK_ROWS):
        bottom = min(top + _WHOLE_CHUNK_ROWS, height * scale)
        chunk = outputs[0, :, top:bottom, : width * scale]
        out[top:bottom] = _from_float(chunk.cpu().numpy().copy(), out.dtype)
    return out


def translate_image(
    image: Any,
    translator: Translator,
    tile: int | None,
    *,
    mode: Mode = "overlap",  # grid | overlap | whole
    overlap: int | None = None,  # overlap mode: shared pixels, 1..tile//2; None: tile // 4
    scale: int = 1,  # output side / input side of the translator
    multiple: int = 1,  # sides the translator accepts are multiples of this
    batch_size: int = 8,  # tiles per translator call
    device: str | torch.device = "cpu",  # where tiles are sent (the translator's device)
    progress: bool | Callable[[int, int], None] = False,  # a tqdm bar, or (done, total) calls
    out: np.ndarray | None = None,  # (H*scale, W*scale, C_out) uint8 or float32; None: new
    stats: statistics.Stats = "auto",  # auto | image | running (gankit.translate.statistics)
    network: nn.Module | None = None,  # whose norm layers ``stats`` sets; None: translator's
) -> np.ndarray:
    """Translate an image of any size: (H, W, C_in) uint8 -> (H*scale, W*scale, C_out) uint8.

    ``image``: (H, W, C_in) uint8 array (or memmap, or PIL image), any H, W >= 1.
    ``translator``: (B, C_in, t, t) float32 in [-1, 1] -> (B, C_out, t*scale, t*scale) in
    [-1, 1]; called under ``torch.inference_mode`` on tensors on ``device``. The batch and
    instance norm layers of ``network`` (the translator itself when it is a torch module)
    normalise with ``stats`` (module docstring): in the tiled modes with ``image`` the whole
    image's statistics are first estimated from the tiles (the progress then counts
    one more (partial) pass over them per such layer).

    Modes: ``grid`` cuts the image into ``tile`` x ``tile`` tiles side by side (the seed
    method: seams show where the translator's borders differ); ``overlap`` (default) blends
    tiles sharing ``overlap`` pixels with weights summing to one; ``whole`` runs the image in
    one pass, padded by reflection to multiples of ``multiple``, when it fits in memory
    (``tile`` is then unused). Tiles go through the translator ``batch_size`` at a time, the
    last batch of each row of tiles possibly smaller. ``out`` is written in place and
    returned; a float32 ``out`` receives the blended values in [-1, 1] unquantised, a uint8
    one (the default) the values clipped to [-1, 1] and rounded to 0..255. ``progress``: True
    shows a tqdm bar over tiles; a callable is called as ``progress(done, total)`` with the
    tiles done, at the start and after every batch (whole mode: not at all); an exception it
    raises stops the translation there.
    """
    pixels = as_pixels(image)
    if mode not in MODES:
        raise TilingError(f"mode={mode!r}: choose one of {', '.join(MODES)}")
    statistics.check_stats(stats)
    for name, value in (("scale", scale), ("multiple", multiple), ("batch_size", batch_size)):
        _check_positive(name, value)
    height, width = pixels.shape[:2]
    if network is None and isinstance(translator, nn.Module):
        network = translator
    if out is not None:  # C_out is checked once the translator has said it
        _output_array(out, (height * scale, width * scale, out.shape[-1] if out.ndim else 0))
    if mode == "whole":
        if overlap is not None:
            raise TilingError(f"overlap={overlap!r}: whole mode has no tiles; leave it None")
        with statistics.normalisation(network, stats):
            return _translate_whole(pixels, translator, scale, multiple, device, out)
    overlap = _resolve_overlap(mode, tile, overlap)
    if tile % multiple:
        raise TilingError(f"tile={tile}: the translator takes multiples of {multiple}")
    if faulty := per_tile_normalisation(network):
        raise TilingError(f"translator normalises each tile by its own statistics in "
                          f"{', '.join(faulty[:3])} (group norm): use mode='whole'")  # fmt: skip
    plan = plan_tiles(height, width, tile, overlap)
    stages = statistics.image_statistics_stages(network, stats)
    total, done = (stages + 1) * plan.rows * plan.cols, 0
    report = progress if callable(progress) else None
    with tqdm(total=total, disable=report is not None or not progress, unit="tile") as bar:

        def advance(count: int) -> None:
            nonlocal done
            done += count
            bar.update(count)
            if report is not None:
                report(done, total)

        if report is not None:
            report(0, total)
        frozen = None
        if stages:
            frozen = _image_statistics(pixels, translator, network, stats, plan, scale,
                                       batch_size, device, advance)  # fmt: skip
        with statistics.normalisation(network, stats, frozen):
            return _translate_tiled(pixels, translator, plan, scale, batch_size, device,
                                    advance, out)  # fmt: skip
