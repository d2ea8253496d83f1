"""Two-domain sources for image-to-image translation (domain A in ``images``, B in ``images_b``).

``digits-edges``: the bundled MNIST digits (domain A) and their Sobel edge maps (domain B, see
:func:`gankit.data.transforms.edge_map`): offline demo and test data for translators. With
``data.paired=true`` (default) row i of B is the edge map of digit i; with ``data.paired=false``
the digits are split in two halves, A from the first and B from the edges of the second, so no
digit appears in both domains.
"""

from __future__ import annotations

import torch

from gankit.config import DataConfig
from gankit.data.base import DATASETS, ImageSet
from gankit.data.sources import mnist_bundled
from gankit.data.transforms import edge_map


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) float in [-1, 1] -> uint8 in [0, 255] (rounded)."""
    return ((images + 1) * 127.5).round_().clamp_(0, 255).to(torch.uint8)


@DATASETS.register("digits-edges")
def digits_edges(cfg: DataConfig) -> ImageSet:
    """Bundled digits (A) and their edge maps (B), paired or not (``cfg.paired``)."""
    digits = mnist_bundled(cfg)
    images = digits.images
    if not cfg.paired:
        half = len(images) // 2
        images, source_b = images[:half], images[half:]
    else:
        source_b = images
    edges = to_uint8(edge_map(source_b.float() / 127.5 - 1))
    kind = "paired" if cfg.paired else "unpaired"
    return ImageSet(
        images=images,
        labels=None,
        class_names=None,
        description=f"digits-edges, {kind} ({len(images)} digits, {len(edges)} edge maps)",
        images_b=edges,
        paired=cfg.paired,
    )
