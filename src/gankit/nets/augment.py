"""DiffAugment: Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training".

The same random, differentiable transformation T is applied to every image the discriminator sees,
real and fake, in the discriminator and the generator steps (their eq. 4):

    L_D = f(-D(T(x))) + f(D(T(G(z))))        L_G = f(-D(T(G(z))))

so D never sees an un-augmented image and G receives gradients through T. The three policies of
the paper (section 3, figure 4), on images in [-1, 1], each drawn independently per image:

- ``color``: brightness + U(-0.5, 0.5); saturation: the deviation from the per-pixel channel mean
  scaled by U(0, 2); contrast: the deviation from the per-image mean scaled by U(0.5, 1.5)
  (saturation does nothing to grayscale images);
- ``translation``: a shift by up to 1/8 of the image size in each direction, zero-filled;
- ``cutout``: a square of half the image size at a random position set to zero.

:func:`attach_diffaugment` installs T as a forward pre-hook of a discriminator, so a family's
losses need no change; gradient penalties are then taken through T (as StyleGAN2-ADA does for R1).
Randomness comes from the global torch RNG, which checkpoints save: resume stays exact.

Conditional and paired inputs (the paper augments unconditional images and class-conditional
ones whose label is not an image; these rules extend it to image-shaped conditions):

- A discriminator that reads a condition stacked on the image's channels (pix2pix's [x | y],
  SPADE's [one-hot labels | image]) declares its image channels with :func:`set_image_channels`.
  ``color`` then acts on those channels only (its channel and image means are over them alone):
  label planes and the condition keep their values. ``translation`` and ``cutout`` move and cut
  every channel of a sample identically, so the condition stays aligned with its image.
- Rows that form one pair (the Siamese content term compares D(A_i) with D(AB_i)) must see the
  same T: inside :func:`same_transform` a row index says which rows share one random draw.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

POLICIES = ("color", "translation", "cutout")
_IMAGE_CHANNELS = "_gankit_image_channels"  # attribute of a discriminator: slice of its input
_AUGMENT = "_gankit_diffaugment"  # attribute of a discriminator: its DiffAugment


def _draws(x: torch.Tensor, rows: torch.Tensor | None) -> int:
    """How many independent draws x (N, ...) needs: N, or one per distinct value of ``rows``."""
    return x.shape[0] if rows is None else int(rows.max()) + 1


def _spread(draws: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    """Draws (M, ...) -> one per row of the batch (N, ...): row r takes draw ``rows[r]``."""
    return draws if rows is None else draws[rows]


def _uniform(
    x: torch.Tensor, low: float, high: float, rows: torch.Tensor | None = None
) -> torch.Tensor:
    """(N, 1, 1, 1) draws from U(low, high), one per image of x (N, C, H, W) (per ``rows``)."""
    draws = torch.rand(_draws(x, rows), 1, 1, 1, device=x.device, dtype=x.dtype)
    return _spread(draws * (high - low) + low, rows)


def color(
    x: torch.Tensor, channels: slice | None = None, rows: torch.Tensor | None = None
) -> torch.Tensor:
    """Random brightness, saturation and contrast per image: (N, C, H, W) -> same shape.

    ``channels``: the image channels to change (None: all); the others pass unchanged and take
    no part in the means. ``rows``: (N,) int64, rows with equal values get the same draws."""
    if channels is not None:
        start, stop, step = channels.indices(x.shape[1])
        if step != 1:
            raise ValueError(f"image channels must be a contiguous slice, got {channels}")
        if (start, stop) != (0, x.shape[1]):
            image = color(x[:, start:stop], rows=rows)
            return torch.cat([x[:, :start], image, x[:, stop:]], dim=1)
    x = x + _uniform(x, -0.5, 0.5, rows)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * _uniform(x, 0.0, 2.0, rows) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _uniform(x, 0.5, 1.5, rows) + mean


def translation(
    x: torch.Tensor, ratio: float = 0.125, rows: torch.Tensor | None = None
) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its size (integer pixels, zero fill), every channel
    alike: (N, C, H, W) -> same shape, out[i, j] = x[i + dy, j + dx]. ``rows`` as in color."""
    n, _, height, width = x.shape
    max_y, max_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    m = _draws(x, rows)
    dy = _spread(torch.randint(-max_y, max_y + 1, (m, 1, 1), device=x.device), rows)
    dx = _spread(torch.randint(-max_x, max_x + 1, (m, 1, 1), device=x.device), rows)
    # Indices into x padded by one zero pixel: anything shifted in from outside reads the padding.
    rows_ = (torch.arange(height, device=x.device).view(1, -1, 1) + dy).clamp(-1, height) + 1
    cols = (torch.arange(width, device=x.device).view(1, 1, -1) + dx).clamp(-1, width) + 1
    padded = nn.functional.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)  # (N, H + 2, W + 2, C)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded[batch, rows_, cols].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, ratio: float = 0.5, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Zero a square of ``ratio`` times the image size at a random centre in each image (it may
    be clipped by the border), in every channel: (N, C, H, W) -> same shape. ``rows`` as in
    color."""
    _, _, height, width = x.shape
    size_y, size_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    m = _draws(x, rows)
    centre_y = torch.randint(0, height + (1 - size_y % 2), (m, 1, 1), device=x.device)
    centre_x = torch.randint(0, width + (1 - size_x % 2), (m, 1, 1), device=x.device)
    centre_y, centre_x = _spread(centre_y, rows), _spread(centre_x, rows)
    top, left = centre_y - size_y // 2, centre_x - size_x // 2
    ys = torch.arange(height, device=x.device).view(1, -1, 1)
    xs = torch.arange(width, device=x.device).view(1, 1, -1)
    inside = (ys >= top) & (ys < top + size_y) & (xs >= left) & (xs < left + size_x)
    return x * (~inside).unsqueeze(1).to(x.dtype)


TRANSFORMS: dict[str, Callable[..., torch.Tensor]] = {
    "color": color,
    "translation": translation,
    "cutout": cutout,
}


def diffaugment(
    x: torch.Tensor,
    policy: Sequence[str],
    image_channels: slice | None = None,  # channels ``color`` acts on; None: all
    rows: torch.Tensor | None = None,  # (N,) int64: rows with equal values share one transform
) -> torch.Tensor:
    """Apply the named transforms in order: (N, C, H, W) -> (N, C, H, W), differentiable in x."""
    if rows is not None and (rows.dim() != 1 or len(rows) != x.shape[0]):
        raise ValueError(f"rows must be one index per image, (N,) = ({x.shape[0]},), got "
                         f"{tuple(rows.shape)}")  # fmt: skip
    for name in policy:
        if name == "color":
            x = color(x, image_channels, rows=rows)
        else:
            x = TRANSFORMS[name](x, rows=rows)
    return x.contiguous()


def set_image_channels(discriminator: nn.Module, channels: slice) -> None:
    """Declare which input channels of ``discriminator`` are image channels (the others a
    condition stacked on them); ``color`` augments only those. Call before attaching."""
    setattr(discriminator, _IMAGE_CHANNELS, channels)


class DiffAugment:
    """T for one discriminator: the policy, its image channels and the current row pairing."""

    def __init__(self, policy: Sequence[str], image_channels: slice | None = None) -> None:
        self.policy = tuple(policy)
        self.image_channels = image_channels
        self.rows: torch.Tensor | None = None  # set inside same_transform

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, H, W): T drawn per image, or per ``self.rows`` value."""
        rows = None if self.rows is None else self.rows.to(x.device)
        return diffaugment(x, self.policy, self.image_channels, rows)

    def pre_hook(self, _module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(
            self(a) if isinstance(a, torch.Tensor) and a.dim() == 4 and a.is_floating_point() else a
            for a in args
        )


def attach_diffaugment(discriminator: nn.Module, policy: Sequence[str]) -> RemovableHandle:
    """Augment every image batch (a 4-d floating tensor among the positional arguments, e.g.
    both domains of CoGAN's D(a, b)) before ``discriminator`` sees it. Other arguments (labels,
    ProGAN's stage and alpha) pass unchanged. ``color`` acts on the channels declared with
    :func:`set_image_channels` (all when none are)."""
    policy = tuple(policy)
    unknown = sorted(set(policy) - set(POLICIES))
    if unknown:
        raise ValueError(f"unknown DiffAugment policies {unknown}; valid: {', '.join(POLICIES)}")
    augment = DiffAugment(policy, getattr(discriminator, _IMAGE_CHANNELS, None))
    setattr(discriminator, _AUGMENT, augment)
    return discriminator.register_forward_pre_hook(augment.pre_hook)


@contextmanager
def same_transform(discriminator: nn.Module, rows: torch.Tensor) -> Iterator[None]:
    """Inside, every image batch ``discriminator`` augments has len(rows) images and image r gets
    the transform drawn for ``rows[r]`` ((N,) int64 in [0, M)): equal values, equal transforms
    (M independent draws in all). Without DiffAugment attached this does nothing."""
    augment: DiffAugment | None = getattr(discriminator, _AUGMENT, None)
    if augment is None:
        yield
        return
    previous, augment.rows = augment.rows, rows
    try:
        yield
    finally:
        augment.rows = previous
