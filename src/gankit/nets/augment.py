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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

POLICIES = ("color", "translation", "cutout")


def _uniform(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """(N, 1, 1, 1) draws from U(low, high), one per image of x (N, C, H, W)."""
    return torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype) * (high - low) + low


def color(x: torch.Tensor) -> torch.Tensor:
    """Random brightness, saturation and contrast per image: (N, C, H, W) -> same shape."""
    x = x + _uniform(x, -0.5, 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * _uniform(x, 0.0, 2.0) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _uniform(x, 0.5, 1.5) + mean


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its size (integer pixels, zero fill):
    (N, C, H, W) -> same shape, out[i, j] = x[i + dy, j + dx]."""
    n, _, height, width = x.shape
    max_y, max_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    dy = torch.randint(-max_y, max_y + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-max_x, max_x + 1, (n, 1, 1), device=x.device)
    # Indices into x padded by one zero pixel: anything shifted in from outside reads the padding.
    rows = (torch.arange(height, device=x.device).view(1, -1, 1) + dy).clamp(-1, height) + 1
    cols = (torch.arange(width, device=x.device).view(1, 1, -1) + dx).clamp(-1, width) + 1
    padded = nn.functional.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)  # (N, H + 2, W + 2, C)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded[batch, rows, cols].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero a square of ``ratio`` times the image size at a random centre in each image (it may
    be clipped by the border): (N, C, H, W) -> same shape."""
    n, _, height, width = x.shape
    size_y, size_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    centre_y = torch.randint(0, height + (1 - size_y % 2), (n, 1, 1), device=x.device)
    centre_x = torch.randint(0, width + (1 - size_x % 2), (n, 1, 1), device=x.device)
    top, left = centre_y - size_y // 2, centre_x - size_x // 2
    ys = torch.arange(height, device=x.device).view(1, -1, 1)
    xs = torch.arange(width, device=x.device).view(1, 1, -1)
    inside = (ys >= top) & (ys < top + size_y) & (xs >= left) & (xs < left + size_x)
    return x * (~inside).unsqueeze(1).to(x.dtype)


TRANSFORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "color": color,
    "translation": translation,
    "cutout": cutout,
}


def diffaugment(x: torch.Tensor, policy: Sequence[str]) -> torch.Tensor:
    """Apply the named transforms in order: (N, C, H, W) -> (N, C, H, W), differentiable in x."""
    for name in policy:
        x = TRANSFORMS[name](x)
    return x.contiguous()


def attach_diffaugment(discriminator: nn.Module, policy: Sequence[str]) -> RemovableHandle:
    """Augment every image batch (a 4-d floating tensor among the positional arguments, e.g.
    both domains of CoGAN's D(a, b)) before ``discriminator`` sees it. Other arguments (labels,
    ProGAN's stage and alpha) pass unchanged."""
    policy = tuple(policy)
    unknown = sorted(set(policy) - set(POLICIES))
    if unknown:
        raise ValueError(f"unknown DiffAugment policies {unknown}; valid: {', '.join(POLICIES)}")

    def augment_inputs(_module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(
            diffaugment(a, policy)
            if isinstance(a, torch.Tensor) and a.dim() == 4 and a.is_floating_point()
            else a
            for a in args
        )

    return discriminator.register_forward_pre_hook(augment_inputs)
