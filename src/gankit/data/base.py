"""What every data source returns, and the dataset registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from gankit.config import DataConfig
from gankit.registry import Registry


@dataclass
class ImageSet:
    """A whole dataset decoded into memory, ready for batching.

    images: (N, C, S, S) uint8, C = ``cfg.channels``, S = ``cfg.stored_size``.
    labels: (N,) int64 class indices, or None when the source has none.

    Two-domain sets (image-to-image translation) also hold ``images_b``: (M, C_b, S, S) uint8,
    domain B, while ``images`` is domain A. ``paired``: row i of both is one example (M == N,
    cropped and flipped alike); unpaired domains are drawn independently.

    Translation sources that keep every image at its own size (``data.variable_size``) hold
    LISTS of (C, H_i, W_i) uint8 tensors instead, each side >= ``data.resolution``; the loader
    cuts random crops from them.
    """

    images: torch.Tensor | list[torch.Tensor]
    labels: torch.Tensor | None
    class_names: list[str] | None
    description: str  # e.g. "mnist train (60000 images)", for logs
    images_b: torch.Tensor | list[torch.Tensor] | None = None  # domain B of a two-domain set
    paired: bool = False

    def __post_init__(self) -> None:
        if self.paired and (self.images_b is None or len(self.images_b) != len(self.images)):
            raise ValueError("a paired set needs images_b with as many images as images")

    @property
    def two_domains(self) -> bool:
        return self.images_b is not None

    def __len__(self) -> int:
        return len(self.images)

    @property
    def channels(self) -> int:
        """C of ``images`` (domain A), whether stored as one tensor or a list of kept sizes."""
        return _channels(self.images)

    @property
    def channels_b(self) -> int | None:
        """C_b of ``images_b``, None for one-domain sets."""
        return None if self.images_b is None else _channels(self.images_b)

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.class_names else 0


def _channels(stored: torch.Tensor | list[torch.Tensor]) -> int:
    if isinstance(stored, list):
        return stored[0].shape[0] if stored else 0
    return stored.shape[1]


# A source takes the validated data config and returns the decoded images.
DataSource = Callable[[DataConfig], ImageSet]
DATASETS: Registry[DataSource] = Registry("dataset")
