"""Endless, resumable batches from an in-memory :class:`ImageSet`.

Small datasets are decoded once into a uint8 tensor; a batch is an index into it plus the random
crop/flip of the config. The order is a fresh permutation each epoch, seeded by (seed, epoch), and
the augmentation draws from a generator of its own, so the whole stream is reproduced by
``state_dict()`` alone: resuming continues with the very next batch.

With several training processes (``world_size`` > 1) each rank walks its own share of the same
permutation: rank r takes the indices r, r + W, r + 2W, ... of each epoch's order truncated to a
multiple of W, so the ranks' batches of b images together are exactly the single-process batch of
W * b at the same position, and every rank's epoch has the same length (the last size mod W
indices of each epoch's order are skipped: a different few each epoch). A saved position resumes
on another world size at the same global position (see :meth:`InfiniteLoader.load_state_dict`).

Translation sources may keep every image at its own size (lists of (C, H_i, W_i) uint8, see
:mod:`gankit.data.translation`); a batch then takes a random ``resolution`` square from each
image, drawn from the same augmentation generator, the same square from both images of a pair.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from gankit.config import DataConfig
from gankit.data.base import ImageSet
from gankit.errors import DataError

# uint8 images: (N, C, S, S), or a list of (C, H_i, W_i) each at least ``resolution`` a side
Stored = torch.Tensor | list[torch.Tensor]
AUGMENT_RANK_STRIDE = 7_919  # rank r's augmentation generator is seeded seed + 1 + this * r


class _Order:
    """A resumable walk through ``size`` indices: a fresh permutation each epoch, seeded by
    (seed, epoch); with ``world_size`` > 1 each rank takes every world_size-th index of it
    (truncated to a multiple of world_size, so every rank's epoch has the same length).

    ``position`` counts this rank's indices taken in the current epoch; the global position (all
    ranks together) is ``position * world_size``.
    """

    def __init__(self, size: int, seed: int, rank: int, world_size: int) -> None:
        if size < world_size:
            raise DataError(f"{size} images cannot be shared among {world_size} processes")
        self.size, self.seed, self.rank, self.world_size = size, seed, rank, world_size
        self.epoch, self.position = 0, 0
        self._order = self._epoch_order(0)

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        rng = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        permutation = torch.randperm(self.size, generator=rng)
        if self.world_size == 1:
            return permutation
        usable = self.size - self.size % self.world_size
        return permutation[:usable][self.rank :: self.world_size]

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
        return {"epoch": self.epoch, "position": self.position, "dataset_size": self.size,
                "world_size": self.world_size}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue at the saved epoch and global position; saved by another world size, the
        global position is rounded down to a multiple of this one (a few images seen twice)."""
        self.epoch = int(state["epoch"])
        self._order = self._epoch_order(self.epoch)
        global_position = int(state["position"]) * int(state.get("world_size", 1))
        self.position = min(global_position // self.world_size, len(self._order))


class InfiniteLoader:
    """Yields {"image": (B, C, R, R) float in [-1, 1], "label": (B,) int64} forever; for a
    two-domain set {"a": (B, C_a, R, R), "b": (B, C_b, R, R)} instead (paired: the same examples,
    cropped and flipped alike; unpaired: domain B in an order of its own).

    With ``world_size`` > 1 each rank takes every world_size-th index of the shared permutation
    (``batch_size`` is then this rank's share of the global batch) and draws its augmentations
    from a generator of its own.
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
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.order = _Order(len(images), seed, rank, world_size)
        self.order_b = None
        if images.images_b is not None and not images.paired:
            self.order_b = _Order(len(images.images_b), seed + 2, rank, world_size)
        self.augment_rng = torch.Generator().manual_seed(seed + 1 + AUGMENT_RANK_STRIDE * rank)
        for stored in (images.images, images.images_b):
            if isinstance(stored, list):
                _check_crop_fits(stored, cfg.resolution, images.description)

    def __iter__(self) -> InfiniteLoader:
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        indices = self.order.take(self.batch_size)
        images, rng = self.images, self.augment_rng
        if images.images_b is None:
            (chosen,) = self._take(indices, images.images)
            batch = {"image": augment(chosen, self.cfg, rng)}
            if images.labels is not None:
                batch["label"] = images.labels[indices]
        elif images.paired:
            a, b = self._take(indices, images.images, images.images_b)
            both = augment(torch.cat([a, b], dim=1), self.cfg, rng)
            batch = {"a": both[:, : a.shape[1]], "b": both[:, a.shape[1] :]}
        else:
            assert self.order_b is not None
            (a,) = self._take(indices, images.images)
            batch = {"a": augment(a, self.cfg, rng)}
            (b,) = self._take(self.order_b.take(self.batch_size), images.images_b)
            batch["b"] = augment(b, self.cfg, rng)
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def _take(self, indices: torch.Tensor, *stores: Stored) -> list[torch.Tensor]:
        """Rows ``indices`` of each of ``stores``, (B, C, S, S) uint8 each. Kept-size lists are
        cropped to (B, C, R, R) here, at the same place in every store (the images of a pair)."""
        if not isinstance(stores[0], list):
            return [stored[indices] for stored in stores]
        chosen = indices.tolist()
        lists = [[stored[i] for i in chosen] for stored in stores]
        return random_crops(lists, self.cfg.resolution, self.augment_rng)

    def state_dict(self) -> dict[str, Any]:
        state = {**self.order.state_dict(), "augment_rng": self.augment_rng.get_state()}
        if self.order_b is not None:
            state["b"] = self.order_b.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue where ``state`` (this rank's, or any rank's) left off.

        Saved with the same world size: exactly (order and augmentation draws). Saved with
        another: the same epoch and global position (rounded down to a multiple of the new world
        size), and augmentation draws re-seeded from (seed, rank, epoch, position): the global
        batches continue the same permutation, the random crops and flips are new ones.
        """
        self.order.load_state_dict(state)
        if self.order_b is not None:
            self.order_b.load_state_dict(state["b"])
        if int(state.get("world_size", 1)) == self.world_size:
            self.augment_rng.set_state(state["augment_rng"])
        else:
            where = self.order.epoch * len(self.images) + self.order.position
            reseed = self.seed + 1 + AUGMENT_RANK_STRIDE * self.rank + 1_000_003 * where
            self.augment_rng.manual_seed(reseed % 2**63)


def augment(images: torch.Tensor, cfg: DataConfig, rng: torch.Generator) -> torch.Tensor:
    """uint8 (B, C, S, S) -> float (B, C, R, R) in [-1, 1]: crop to ``cfg.resolution``, maybe flip,
    maybe rotate the hue.

    The crop is central unless ``cfg.crop == "random"`` (one offset per image); flips are per image,
    and so are the hue angles of ``cfg.hue`` (:func:`rotate_hue`; C = 6, the two RGB images of a
    pair side by side, turn by the same angle).
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
    if cfg.hue:
        angles = torch.rand(images.shape[0], generator=rng) * (2 * math.pi)
        groups = images.unflatten(1, (-1, 3))  # (B, C / 3, 3, R, R): each RGB image of a pair
        images = rotate_hue(groups.transpose(0, 1), angles).transpose(0, 1).flatten(1, 2)
    return images.contiguous()


# RGB -> YIQ (NTSC): Y is the BT.601 luma, I and Q the chroma plane
_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263],
                     [0.211456, -0.522591, 0.311135]])  # fmt: skip


def rotate_hue(images: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Turn the hue of RGB ``images`` (..., B, 3, H, W) in [-1, 1] by ``angles`` (B,) radians,
    one per image: the chroma plane (I, Q) of YIQ is rotated and the luma Y kept, then the result
    is clamped to [-1, 1]. Greys stay as they are (the map fixes the grey axis, so it is the same
    linear map on [-1, 1] and [0, 1] values); a full turn is the identity.

    An augmentation for unpaired domains whose photos differ in palette as well as in what the
    translation should learn (a painting style, say): with random hue on both sides the
    discriminator cannot tell them apart by hue, so the generator is not pushed to repaint the
    colours. Keeping the luma exactly keeps every filter that reads only the luma's structure
    (cv2.xphoto.oilPainting's intensity histogram, for one) commuting with the rotation, up to
    rounding and clipping at the RGB gamut."""
    yiq = _YIQ.to(images)
    cos, sin = angles.to(images).cos(), angles.to(images).sin()
    zero, one = torch.zeros_like(cos), torch.ones_like(cos)
    turn = torch.stack([torch.stack([one, zero, zero], -1), torch.stack([zero, cos, -sin], -1),
                        torch.stack([zero, sin, cos], -1)], -2)  # (B, 3, 3)  # fmt: skip
    matrices = torch.linalg.solve(yiq, turn @ yiq)  # YIQ^-1 R YIQ, (B, 3, 3)
    out = torch.einsum("bij,...bjhw->...bihw", matrices, images)
    return out.clamp_(-1.0, 1.0)


def random_crops(
    stacks: list[list[torch.Tensor]], size: int, rng: torch.Generator
) -> list[torch.Tensor]:
    """A random ``size`` x ``size`` window of each image: one (B, C, size, size) per stack.

    stacks: lists of B uint8 images (C, H_i, W_i) with H_i, W_i >= size; image i has the same
    size in every stack (the images of a pair) and gets the same window in all of them. The
    offsets come from one draw of ``rng``, (B, 2) uniform in [0, 1) scaled to each image's free
    range, so every window position of an image is equally likely.
    """
    fractions = torch.rand(len(stacks[0]), 2, generator=rng, dtype=torch.float64).tolist()
    windows = []
    for image, (fy, fx) in zip(stacks[0], fractions, strict=True):
        height, width = image.shape[-2:]
        windows.append((int(fy * (height - size + 1)), int(fx * (width - size + 1))))
    return [torch.stack([img[:, y : y + size, x : x + size]
                         for img, (y, x) in zip(stack, windows, strict=True)])
            for stack in stacks]  # fmt: skip


def _check_crop_fits(images: list[torch.Tensor], size: int, description: str) -> None:
    for index, image in enumerate(images):
        if min(image.shape[-2:]) < size:
            raise DataError(
                f"{description}: image {index} is {tuple(image.shape[-2:])}, smaller than the "
                f"{size} x {size} crops of data.resolution (load the data with the same config)"
            )
