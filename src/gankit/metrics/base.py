"""What every feature network provides to the metrics.

A feature network turns images into vectors; metrics compare the vectors of generated and
reference images. Its ``name`` and weight ``hash`` are part of every reported number's protocol and
of the reference-statistics cache key.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from gankit.errors import MetricError


@runtime_checkable
class FeatureExtractor(Protocol):
    """Images -> features (and optionally class logits, for the Inception Score)."""

    name: str  # e.g. "tf-inception-2015-12-05-pool3"; recorded with every number
    hash: str  # sha256 (hex) of the weights file; part of the cache key
    dims: int  # feature length D
    resize: str  # how images are brought to the network's input size, e.g. "pil-bicubic-float"

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """images: (N, C, H, W) uint8, C in {1, 3}, any H x W -> (N, D) float32 on the CPU."""
        ...


def check_images(images: torch.Tensor) -> None:
    """Raise MetricError unless ``images`` is a non-empty (N, C, H, W) uint8 tensor, C in {1, 3}."""
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
        got = images.dtype if isinstance(images, torch.Tensor) else type(images).__name__
        raise MetricError(f"metric images must be a uint8 tensor (N, C, H, W), got {got}")
    if images.ndim != 4 or images.shape[1] not in (1, 3) or 0 in images.shape[2:]:
        raise MetricError(
            f"metric images must have shape (N, C, H, W) with C in {{1, 3}}, got "
            f"{tuple(images.shape)}"
        )
