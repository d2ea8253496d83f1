"""Endless, resumable batches from an in-memory :class:`ImageSet`.

Small datasets are decoded once into a uint8 tensor; a batch is an index into it plus the random
crop/flip of the config. The order is a fresh permutation each epoch, seeded by (seed, epoch), and
the augmentation draws from a generator of its own, so the whole stream is reproduced by
``state_dict()`` alone: resuming continues with the very next batch.
"""

from __future__ import annotations

from typing import Any

import torch

from gankit.config import DataConfig
from gankit.data.base import ImageSet


class InfiniteLoader:
    """Yields {"image": (B, C, R, R) float in [-1, 1], "label": (B,) int64} forever.

    With ``world_size`` > 1 each rank takes every world_size-th index of the shared permutation.
    """

    def __init__(
        self,
        images: ImageSet,
        cfg: DataConfig,
        batch_size: int,
        seed: int,
        device: torch.device | str = "cpu",
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.images, self.cfg, self.batch_size = images, cfg, batch_size
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.device = torch.device(device)
        self.epoch, self.position = 0, 0
        self.augment_rng = torch.Generator().manual_seed(seed + 1)
        self._order = self._epoch_order(0)

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        rng = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        permutation = torch.randperm(len(self.images), generator=rng)
        return permutation[self.rank :: self.world_size]

    def _next_indices(self) -> torch.Tensor:
        taken: list[torch.Tensor] = []
        needed = self.batch_size
        while needed > 0:
            if self.position >= len(self._order):
                self.epoch, self.position = self.epoch + 1, 0
                self._order = self._epoch_order(self.epoch)
            chunk = self._order[self.position : self.position + needed]
            taken.append(chunk)
            self.position += len(chunk)
            needed -= len(chunk)
        return torch.cat(taken)

    def __iter__(self) -> InfiniteLoader:
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        indices = self._next_indices()
        images = augment(self.images.images[indices], self.cfg, self.augment_rng)
        batch = {"image": images.to(self.device, non_blocking=True)}
        if self.images.labels is not None:
            batch["label"] = self.images.labels[indices].to(self.device, non_blocking=True)
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "position": self.position,
            "augment_rng": self.augment_rng.get_state(),
            "dataset_size": len(self.images),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self.augment_rng.set_state(state["augment_rng"])
        self._order = self._epoch_order(self.epoch)


def augment(images: torch.Tensor, cfg: DataConfig, rng: torch.Generator) -> torch.Tensor:
    """uint8 (B, C, S, S) -> float (B, C, R, R) in [-1, 1]: crop to ``cfg.resolution``, maybe flip.

    The crop is central unless ``cfg.crop == "random"`` (one offset per image); flips are per image.
    """
    size, target = images.shape[-1], cfg.resolution
    if size != target:
        if cfg.crop == "random":
            offsets = torch.randint(0, size - target + 1, (images.shape[0], 2), generator=rng)
            images = torch.stack(
                [
                    img[:, y : y + target, x : x + target]
                    for img, (y, x) in zip(images, offsets.tolist(), strict=True)
                ]
            )
        else:
            top = (size - target) // 2
            images = images[:, :, top : top + target, top : top + target]
    images = images.float().div_(127.5).sub_(1.0)
    if cfg.flip:
        flip = torch.rand(images.shape[0], generator=rng) < 0.5
        images[flip] = images[flip].flip(-1)
    return images.contiguous()
