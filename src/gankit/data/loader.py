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


class _Order:
    """A resumable walk through ``size`` indices: a fresh permutation each epoch, seeded by
    (seed, epoch); with ``world_size`` > 1 each rank takes every world_size-th index."""

    def __init__(self, size: int, seed: int, rank: int, world_size: int) -> None:
        self.size, self.seed, self.rank, self.world_size = size, seed, rank, world_size
        self.epoch, self.position = 0, 0
        self._order = self._epoch_order(0)

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        rng = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        permutation = torch.randperm(self.size, generator=rng)
        return permutation[self.rank :: self.world_size]

    def take(self, count: int) -> torch.Tensor:
        """The next ``count`` indices, (count,) int64, crossing epochs as needed."""
        taken: list[torch.Tensor] = []
        while count > 0:
            if self.position >= len(self._order):
                self.epoch, self.position = self.epoch + 1, 0
                self._order = self._epoch_order(self.epoch)
            chunk = self._order[self.position : self.position + count]
            taken.append(chunk)
            self.position += len(chunk)
            count -= len(chunk)
        return torch.cat(taken)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position, "dataset_size": self.size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = self._epoch_order(self.epoch)


class InfiniteLoader:
    """Yields {"image": (B, C, R, R) float in [-1, 1], "label": (B,) int64} forever; for a
    two-domain set {"a": (B, C, R, R), "b": (B, C_b, R, R)} instead (paired: the same examples,
    cropped and flipped alike; unpaired: domain B in an order of its own).

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
        self.device = torch.device(device)
        self.order = _Order(len(images), seed, rank, world_size)
        self.order_b = None
        if images.images_b is not None and not images.paired:
            self.order_b = _Order(len(images.images_b), seed + 2, rank, world_size)
        self.augment_rng = torch.Generator().manual_seed(seed + 1)

    def __iter__(self) -> InfiniteLoader:
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        indices = self.order.take(self.batch_size)
        images = self.images
        if images.images_b is None:
            batch = {"image": augment(images.images[indices], self.cfg, self.augment_rng)}
            if images.labels is not None:
                batch["label"] = images.labels[indices]
        elif images.paired:
            channels = images.images.shape[1]
            both = torch.cat([images.images[indices], images.images_b[indices]], dim=1)
            both = augment(both, self.cfg, self.augment_rng)
            batch = {"a": both[:, :channels], "b": both[:, channels:]}
        else:
            assert self.order_b is not None
            indices_b = self.order_b.take(self.batch_size)
            batch = {
                "a": augment(images.images[indices], self.cfg, self.augment_rng),
                "b": augment(images.images_b[indices_b], self.cfg, self.augment_rng),
            }
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def state_dict(self) -> dict[str, Any]:
        state = {**self.order.state_dict(), "augment_rng": self.augment_rng.get_state()}
        if self.order_b is not None:
            state["b"] = self.order_b.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.order.load_state_dict(state)
        self.augment_rng.set_state(state["augment_rng"])
        if self.order_b is not None:
            self.order_b.load_state_dict(state["b"])


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
