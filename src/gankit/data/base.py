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
    """

    images: torch.Tensor
    labels: torch.Tensor | None
    class_names: list[str] | None
    description: str  # e.g. "mnist train (60000 images)", for logs

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.class_names else 0


# A source takes the validated data config and returns the decoded images.
DataSource = Callable[[DataConfig], ImageSet]
DATASETS: Registry[DataSource] = Registry("dataset")
