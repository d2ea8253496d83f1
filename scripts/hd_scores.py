"""Scores of a translated HD photo against its true painting (scripts/hd_painting.py, issue 19).

All images are (H, W, 3) uint8 RGB of one size; ``truth`` is the oil-painting filter's output
for the whole photo (:func:`gankit.data.hd_photos.true_painting`).

- PSNR (dB, peak 255, over all pixels and channels) and SSIM (Wang et al. 2004: 11 x 11
  Gaussian window, sigma 1.5, K1 0.01, K2 0.03, population covariances, the mean over the
  positions where the window fits, per channel, then over channels), by scikit-image's
  ``skimage.metrics`` (a dev dependency). They are the definitions of
  :mod:`gankit.metrics.fidelity` (tests/test_hd_painting.py checks that they agree); scikit-image's
  separable filters run SSIM on a 4 MP photo about 25x faster than that module's 2-D
  convolution in float64, which is made for batches of small images.
- PSNR at the tile borders: the same PSNR over only the pixels within :data:`BORDER_BAND` px of
  grid mode's tile edges (the seams' pixels; 2 px on each side of a border line), beside the
  PSNR of all pixels: seams that are errors show as a lower border PSNR.
- The style distance (:func:`style_distance`), a number in [0, 1], 0 for equal statistics.
  The image is cut into :data:`STYLE_BLOCK` px blocks (the last ones of a row or column
  smaller); in every block three normalised histograms are taken:

  1. colour: the joint RGB histogram, 8 levels per channel (512 bins): the palette;
  2. edges: the gradient magnitude of the luma (BT.601 weights, Sobel, in grey levels per
     pixel) in log-spaced bins 0, 0.5, 1, 1.4, 2, ... 256, and above: how much of the block is
     flat and how sharp its edges are;
  3. strokes: the gradient orientation (0 to 180 degrees, 12 bins) weighted by the magnitude:
     which way the edges run.

  Each histogram of the output block is compared with the same block of the truth by the
  Jensen-Shannon distance (the square root of the JS divergence, base 2: symmetric, in [0, 1],
  defined where bins are empty); the distance is the mean over the three and over the blocks
  weighted by their pixels, and each of the three means is reported too.

  Why these statistics and not the Gram matrices of a feature network: the oil-painting filter
  changes exactly what they measure (it replaces texture and noise by flat patches of the
  locally dominant colour with sharp boundaries, which moves the edge histogram most: on
  LadyBird.jpg the photo itself is at 0.45 from its painting on edges, a Gaussian blur of it
  (radius 2) at 0.28, the painting with Gaussian noise of 4 grey levels at 0.57), they need no
  network weights (offline, deterministic, no download), they are taken at the filter's own
  scale on the full-size image (a classifier's features would first shrink a
  2560 px photo to 299 px, where the 15 px strokes are 2 px), and each number says what differs.
  Per block, not over the whole image: a translation that paints the sky but leaves the grass a
  photo must not average out to the painting's global statistics. Limits: they are statistics,
  not a perceptual metric; a blur comes closer than the photo on edges without being a painting
  (PSNR and SSIM are beside it for that).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage
from scipy.spatial.distance import jensenshannon

from gankit.translate import border_lines, plan_tiles

STYLE_BLOCK = 256  # px: side of the blocks the style statistics are taken in
COLOUR_LEVELS = 8  # per channel: 8^3 = 512 colour bins
ORIENTATION_BINS = 12  # over 0 to 180 degrees: 15 degrees each
# gradient magnitudes in grey levels per pixel: 0, then 0.5 .. 256 in steps of sqrt(2), then more
EDGE_BINS = np.concatenate([[0.0, 0.5], 2.0 ** np.arange(0, 8.5, 0.5), [np.inf]])
BORDER_BAND = 2  # px on each side of a tile border line counted as the border
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601
STATISTICS = ("colour", "edges", "strokes")


def _check_pair(image: np.ndarray, truth: np.ndarray) -> None:
    if image.shape != truth.shape or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"need two (H, W, 3) images of one shape: {image.shape}, {truth.shape}")
    if image.dtype != np.uint8 or truth.dtype != np.uint8:
        raise ValueError(f"need uint8 images, got {image.dtype} and {truth.dtype}")


def psnr(image: np.ndarray, truth: np.ndarray) -> float:
    """PSNR in dB, peak 255, of (H, W, 3) uint8 ``image`` against ``truth``; inf if equal."""
    from skimage.metrics import peak_signal_noise_ratio

    _check_pair(image, truth)
    if np.array_equal(image, truth):
        return float("inf")
    return float(peak_signal_noise_ratio(truth, image, data_range=255))


def ssim(image: np.ndarray, truth: np.ndarray) -> float:
    """Mean SSIM of (H, W, 3) uint8 images (module docstring), in [-1, 1]; 1 if equal."""
    from skimage.metrics import structural_similarity

    _check_pair(image, truth)
    return float(
        structural_similarity(
            truth,
            image,
            channel_axis=2,
            data_range=255,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )


def border_mask(height: int, width: int, tile: int, band: int = BORDER_BAND) -> np.ndarray:
    """(H, W) bool: the pixels within ``band`` px of a grid-mode tile edge (``tile`` px
    tiles from the top left corner): rows or columns b - band .. b + band - 1 of each line b."""
    mask = np.zeros((height, width), bool)
    plan = plan_tiles(height, width, tile, 0)
    for axis, size in ((0, height), (1, width)):
        lines = border_lines(size, plan.tile, plan.stride, offset=-plan.margin)
        near = np.zeros(size, bool)
        for line in lines:
            near[max(0, line - band) : line + band] = True
        mask |= near[:, None] if axis == 0 else near[None, :]
    return mask


def border_psnr(image: np.ndarray, truth: np.ndarray, tile: int) -> float:
    """PSNR in dB (peak 255) over only the pixels of :func:`border_mask` (all channels)."""
    _check_pair(image, truth)
    mask = border_mask(image.shape[0], image.shape[1], tile)
    errors = image[mask].astype(np.float64) - truth[mask]
    mse = float(np.mean(errors**2))
    return float("inf") if mse == 0 else float(10 * np.log10(255**2 / mse))


def _feature_maps(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel of (H, W, 3) uint8: colour bin (H, W) int in [0, 512), gradient magnitude
    (H, W) float32 in grey levels per pixel, orientation (H, W) float32 in [0, pi)."""
    levels = (image // (256 // COLOUR_LEVELS)).astype(np.int32)
    colour = (levels[..., 0] * COLOUR_LEVELS + levels[..., 1]) * COLOUR_LEVELS + levels[..., 2]
    luma = image.astype(np.float32) @ _LUMA
    # Sobel sums 4 differences of pixels 2 apart with weights 1, 2, 1: / 8 = grey levels per px
    dx, dy = ndimage.sobel(luma, axis=1) / 8, ndimage.sobel(luma, axis=0) / 8
    return colour, np.hypot(dx, dy), np.mod(np.arctan2(dy, dx), np.pi)


def _block_histograms(
    maps: tuple[np.ndarray, np.ndarray, np.ndarray], box: tuple[slice, slice]
) -> dict[str, np.ndarray]:
    """The three histograms (module docstring) of one block, each normalised to sum 1 (a flat
    block's stroke histogram, with no edge at all, is uniform)."""
    colour, magnitude, angle = (m[box].ravel() for m in maps)
    counts = {
        "colour": np.bincount(colour, minlength=COLOUR_LEVELS**3).astype(np.float64),
        "edges": np.histogram(magnitude, bins=EDGE_BINS)[0].astype(np.float64),
        "strokes": np.histogram(angle, bins=ORIENTATION_BINS, range=(0, np.pi), weights=magnitude)[
            0
        ].astype(np.float64),
    }
    return {
        name: c / c.sum() if c.sum() > 0 else np.full_like(c, 1 / c.size)
        for name, c in counts.items()
    }


def style_distance(image: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """The style distance of (H, W, 3) uint8 ``image`` from ``truth`` (module docstring):
    ``{"style_distance": mean of the three, "colour": ..., "edges": ..., "strokes": ...}``,
    each in [0, 1], the block means weighted by pixels."""
    _check_pair(image, truth)
    maps = _feature_maps(image), _feature_maps(truth)
    height, width = image.shape[:2]
    totals = dict.fromkeys(STATISTICS, 0.0)
    for top in range(0, height, STYLE_BLOCK):
        for left in range(0, width, STYLE_BLOCK):
            box = (slice(top, top + STYLE_BLOCK), slice(left, left + STYLE_BLOCK))
            pixels = maps[0][1][box].size
            ours, theirs = (_block_histograms(m, box) for m in maps)
            for name in STATISTICS:
                distance = jensenshannon(ours[name], theirs[name], base=2)
                totals[name] += pixels * float(np.nan_to_num(distance))  # equal: 0, not NaN
    parts = {name: total / (height * width) for name, total in totals.items()}
    return {"style_distance": float(np.mean(list(parts.values()))), **parts}


def score(image: np.ndarray, truth: np.ndarray, tile: int) -> dict[str, Any]:
    """Every full-reference number of (H, W, 3) uint8 ``image`` against ``truth``: psnr_db,
    border_psnr_db (``tile``: grid mode's tile side), ssim, style_distance and its parts
    (style_colour, style_edges, style_strokes), rounded for the report."""
    style = style_distance(image, truth)
    return {
        "psnr_db": round(psnr(image, truth), 3),
        "border_psnr_db": round(border_psnr(image, truth, tile), 3),
        "ssim": round(ssim(image, truth), 4),
        "style_distance": round(style["style_distance"], 4),
        **{f"style_{name}": round(style[name], 4) for name in STATISTICS},
    }
