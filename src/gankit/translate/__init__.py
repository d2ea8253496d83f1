"""Applying an image-to-image translator to images of any size (see :mod:`.tiling`)."""

from gankit.translate.seams import border_lines, seam_score
from gankit.translate.statistics import STATS, StatisticsError, normalisation
from gankit.translate.tiling import (
    MODES,
    TilePlan,
    TilingError,
    as_pixels,
    per_tile_normalisation,
    plan_tiles,
    reflect_indices,
    taper_window,
    translate_image,
)

__all__ = [
    "MODES",
    "STATS",
    "StatisticsError",
    "TilePlan",
    "TilingError",
    "as_pixels",
    "border_lines",
    "normalisation",
    "per_tile_normalisation",
    "plan_tiles",
    "reflect_indices",
    "seam_score",
    "taper_window",
    "translate_image",
]
