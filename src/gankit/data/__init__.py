"""Datasets: registered sources that decode a whole dataset into memory as an :class:`ImageSet`."""

from __future__ import annotations

from gankit.config import DataConfig
from gankit.data import domains as _domains  # noqa: F401 - registers the sources in DATASETS
from gankit.data import folder as _folder  # noqa: F401
from gankit.data import sources as _sources  # noqa: F401
from gankit.data import translation as _translation  # noqa: F401
from gankit.data.base import DATASETS, ImageSet


def load_images(cfg: DataConfig) -> ImageSet:
    """Decode the dataset ``cfg.source`` names: images (N, C, S, S) uint8, see :class:`ImageSet`
    (translation sources with kept sizes: lists of (C, H_i, W_i), see :mod:`.translation`).

    Raises GankitError for an unknown source (listing the valid ones) and DataError for data that
    is missing or unreadable.
    """
    return DATASETS.get(cfg.source)(cfg)


__all__ = ["DATASETS", "ImageSet", "load_images"]
