"""Two-domain sources for image-to-image translation (domain A in ``images``, B in ``images_b``).

``digits-edges``: the bundled MNIST digits (domain A) and their Sobel edge maps (domain B, see
:func:`gankit.data.transforms.edge_map`): offline demo and test data for translators. With
``data.paired=true`` (default) row i of B is the edge map of digit i; with ``data.paired=false``
the digits are split in two halves, A from the first and B from the edges of the second, so no
digit appears in both domains.

``photos-textures``: colour photos (A) and grey textures (B) that ship with scikit-image (a
dev/demo dependency), unpaired: the offline data of the HD translation example.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from PIL import Image

from gankit.config import DataConfig
from gankit.data.base import DATASETS, ImageSet
from gankit.data.sources import mnist_bundled
from gankit.data.transforms import edge_map
from gankit.data.translation import image_set, stored_image
from gankit.errors import DataError


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


PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
          "motorcycle_right.png")  # fmt: skip
TEXTURES = ("brick.png", "grass.png", "gravel.png")


def skimage_data_dir() -> Path:
    """The folder of images that ships inside scikit-image's wheel (found without importing it).

    Raises DataError when scikit-image (a dev/demo dependency, not a runtime one) is missing."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "data.source=photos-textures needs scikit-image's bundled images: "
            "pip install 'gankit[demo]' (or scikit-image)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@DATASETS.register("photos-textures")
def photos_textures(cfg: DataConfig) -> ImageSet:
    """Six colour photos (A: astronaut, cat, coffee, rocket, two motorcycles; 300-740 px) and
    three grey textures (B: brick, grass, gravel; 512 px) from scikit-image's bundled images:
    offline demo data for unpaired photo -> texture translation (the HD example of the README).

    Kept at their own sizes with random crops (``data.crop=random``, the translation default),
    or centre squares; textures are repeated to ``data.channels`` channels."""
    folder = skimage_data_dir()
    stored = []
    for domain, names in (("a", PHOTOS), ("b", TEXTURES)):
        arrays = []
        for name in names:
            try:
                with Image.open(folder / name) as img:
                    arrays.append(stored_image(img, domain, cfg))
            except OSError as exc:
                raise DataError(f"{folder / name}: {exc}") from None
        stored.append(arrays)
    if cfg.direction == "BtoA":
        stored.reverse()
    return image_set(*stored, False, cfg, "photos-textures (scikit-image)")
