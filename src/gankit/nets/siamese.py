"""Networks of the Siamese GAN for HD images (:mod:`gankit.objectives.siamese`).

- :class:`PatchGenerator` translates S x S patches and, being fully convolutional, any image
  whose sides are multiples of ``2**downsamplings`` (other sizes are reflection-padded up to one
  and cropped back). Its shape is the ResNet translator of Johnson et al. 2016 (section 3 and
  supplementary material; the CycleGAN generator, Zhu et al. 2017, appendix 7.2): a 7x7 stem,
  strided 3x3 downsamplings, residual blocks, upsamplings and a 7x7 head with tanh, with
  reflection padding everywhere. Two changes serve tiling: every zero padding is a reflection,
  so a patch border looks like image content to every layer; and the upsamplings are
  nearest-neighbour resizes followed by a 3x3 convolution instead of transposed convolutions,
  whose uneven kernel overlap draws checkerboards (Odena et al. 2016, "Deconvolution and
  Checkerboard Artifacts") in a phase tied to the tile grid.
- :class:`SiameseDiscriminator` maps a 2S x 2S image to a vector of ``vector_length`` numbers:
  strided 4x4 convolutions with LeakyReLU(0.2) (the DCGAN/pix2pix discriminator stack,
  Radford et al. 2016, Isola et al. 2017) down to at most 4 x 4, then flatten and one linear
  layer, with spectral norm (Miyato et al. 2018) optional, and an optional detail input
  (:func:`detail`) for styles that differ from their source only in fine, faint texture.
- :func:`cut_patches` / :func:`join_patches` cut images into a grid of patches and put them back.

Weights start from N(0, 0.02) (Radford et al. 2016, section 4), as CycleGAN and pix2pix do.

Normalisation. The generator uses batch norm (or none): in training its statistics come from all
the patches of the batch at once (4B patches of B crops of different photos), never from one
tile, so the patches of an image are treated alike; in evaluation it uses running statistics,
the estimate of those batch statistics over the training data, so a tile's output does not
depend on which other tiles share its batch. Image-level statistics (``stats="image"`` of
:mod:`gankit.translate.statistics`: one image's statistics, shared by all its tiles) are
available too, but are not the default: training never normalised by one image's statistics,
and they move the output as far from the running-statistics one as a change of family would
(measured by ``python -m benchmarks.faithful_tiling`` on a 1,500-step HD-example run, 1024 x 768,
tile 256, overlap 64: whole-image output with running statistics against per-image statistics
32.6 dB PSNR; tiled with image-level statistics against whole per-image 36.9 dB, tiled with
running statistics against whole running 35.7 dB; seam scores equal to the whole pass's
on the same lines within 0.3%). Instance norm is avoided: it normalises every patch by its own
statistics during training, a per-tile statistic that seams tile borders. The discriminator has
no normalisation: its output vectors must be functions of one image each, since the content loss
compares vectors of different images.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from gankit.nets.blocks import sn
from gankit.nets.dcgan import dcgan_init

GeneratorNorm = Literal["batch", "none"]


# --------------------------------------------------------------------------------------------------
# Cutting images into patches and back


def cut_patches(images: torch.Tensor, patch: int) -> torch.Tensor:
    """Cut each image into its grid of non-overlapping ``patch`` x ``patch`` patches.

    images: (N, C, rows * patch, cols * patch) -> (N * rows * cols, C, patch, patch), the
    patches of image n at n * rows * cols + row * cols + col (row-major, top-left first).
    """
    n, channels, height, width = images.shape
    if height % patch or width % patch:
        raise ValueError(f"images of {height}x{width} do not split into {patch}x{patch} patches")
    rows, cols = height // patch, width // patch
    grid = images.reshape(n, channels, rows, patch, cols, patch)
    return grid.permute(0, 2, 4, 1, 3, 5).reshape(n * rows * cols, channels, patch, patch)


def join_patches(patches: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """The inverse of :func:`cut_patches`: (N * rows * cols, C, h, w) -> (N, C, rows * h,
    cols * w), exactly (a reshape; no blending)."""
    total, channels, height, width = patches.shape
    n = total // (rows * cols)
    if n * rows * cols != total:
        raise ValueError(f"{total} patches do not make whole {rows}x{cols} grids")
    grid = patches.reshape(n, rows, cols, channels, height, width)
    return grid.permute(0, 3, 1, 4, 2, 5).reshape(n, channels, rows * height, cols * width)


# --------------------------------------------------------------------------------------------------
# Generator


def _norm(kind: GeneratorNorm, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.Identity()


def _conv(
    in_channels: int, out_channels: int, kernel: int, stride: int, norm: GeneratorNorm
) -> list[nn.Module]:
    """Reflection pad -> conv (no bias before batch norm, whose shift replaces it)."""
    return [
        nn.ReflectionPad2d(kernel // 2),
        nn.Conv2d(in_channels, out_channels, kernel, stride, bias=norm == "none"),
    ]


def _stage(
    in_channels: int, out_channels: int, kernel: int, stride: int, norm: GeneratorNorm
) -> list[nn.Module]:
    """Reflection pad -> conv -> norm -> ReLU."""
    return [*_conv(in_channels, out_channels, kernel, stride, norm), _norm(norm, out_channels),
            nn.ReLU()]  # fmt: skip


class ResidualBlock(nn.Module):
    """x + [reflect-pad, conv3x3, norm, ReLU, reflect-pad, conv3x3, norm](x): (N, C, H, W) -> same
    (Johnson et al. 2016, supplementary material; He et al. 2016)."""

    def __init__(self, channels: int, norm: GeneratorNorm = "batch") -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv(channels, channels, 3, 1, norm), _norm(norm, channels), nn.ReLU(),
            *_conv(channels, channels, 3, 1, norm), _norm(norm, channels),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class PatchGenerator(nn.Module):
    """images: (N, C_in, h, w) in [-1, 1] -> (N, C_out, h, w) in [-1, 1], fully convolutional.

    stem: reflect-pad 3, conv7x7 to ``width``, norm, ReLU; ``downsamplings`` x (reflect-pad 1,
    conv3x3 stride 2 doubling the channels (capped at ``max_channels``), norm, ReLU);
    ``residual_blocks`` x :class:`ResidualBlock`; ``downsamplings`` x (nearest upsample x2,
    reflect-pad 1, conv3x3 halving the channels, norm, ReLU); reflect-pad 3, conv7x7, tanh.

    ``residual=True`` (C_in == C_out): the last conv7x7 predicts a change r instead, zero at
    initialisation, and the output is clamp(images + r, -1, 1): G starts as the identity and
    learns what to alter (for styles that keep the input's colours and layout).
    """

    def __init__(
        self,
        *,
        in_channels: int,  # C_in, domain A
        out_channels: int,  # C_out, domain B
        width: int = 32,  # channels of the stem; each downsampling doubles them
        downsamplings: int = 2,  # stride-2 stages: h and w are padded to multiples of 2**this
        residual_blocks: int = 6,  # blocks at the lowest resolution (6 for 128 px in CycleGAN)
        norm: GeneratorNorm = "batch",  # "batch": batch norm (running stats in eval) | "none"
        max_channels: int = 256,  # cap on any layer's channels
        residual: bool = False,  # output images + r (r zero at init) instead of tanh(...)
    ) -> None:
        super().__init__()
        if residual and in_channels != out_channels:
            raise ValueError(f"residual needs C_in == C_out, got {in_channels} and {out_channels}")
        self.multiple = 2**downsamplings
        self.residual = residual
        widths = [min(width * 2**i, max_channels) for i in range(downsamplings + 1)]
        layers = _stage(in_channels, width, 7, 1, norm)
        for fan_in, fan_out in pairwise(widths):
            layers += _stage(fan_in, fan_out, 3, 2, norm)
        layers += [ResidualBlock(widths[-1], norm) for _ in range(residual_blocks)]
        for fan_in, fan_out in pairwise(widths[::-1]):
            layers += [nn.Upsample(scale_factor=2, mode="nearest")]
            layers += _stage(fan_in, fan_out, 3, 1, norm)
        head = _conv(width, out_channels, 7, 1, "none")
        layers += head if residual else [*head, nn.Tanh()]
        self.net = nn.Sequential(*layers)
        dcgan_init(self)
        if residual:
            last = [m for m in head if isinstance(m, nn.Conv2d)][-1]
            nn.init.zeros_(last.weight)
            if last.bias is not None:
                nn.init.zeros_(last.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[-2:]
        pad_h, pad_w = -height % self.multiple, -width % self.multiple
        if pad_h or pad_w:  # reflect up to a multiple of 2**downsamplings, crop back afterwards
            images = F.pad(images, (0, pad_w, 0, pad_h), mode="reflect")
        out = self.net(images)
        if self.residual:
            out = (images + out).clamp(-1, 1)
        return out[..., :height, :width]


# --------------------------------------------------------------------------------------------------
# Siamese discriminator


def discriminator_sides(resolution: int) -> list[int]:
    """Feature-map sides after each strided convolution: halve while the side is even and
    above 4 (128 -> 64, 32, 16, 8, 4; 16 -> 8, 4; 24 -> 12, 6, 3)."""
    sides, side = [], resolution
    while side > 4 and side % 2 == 0:
        side //= 2
        sides.append(side)
    return sides


def detail(images: torch.Tensor, gain: float) -> torch.Tensor:
    """(N, C, H, W) -> (N, 2C, H, W): the images and ``gain`` times their detail, the images
    minus their 3 x 3 box mean (reflect-padded): a high-pass layer, zero where the image is flat.
    """
    local_mean = F.avg_pool2d(F.pad(images, (1, 1, 1, 1), mode="reflect"), 3, 1)
    return torch.cat([images, gain * (images - local_mean)], dim=1)


class SiameseDiscriminator(nn.Module):
    """images: (N, C, R, R) in [-1, 1] -> vectors: (N, vector_length), raw (no squashing).

    k strided conv4x4 (padding 1) with LeakyReLU(0.2), the channels starting at ``width`` and
    doubling (capped at ``max_channels``), k from :func:`discriminator_sides`; then flatten and a
    linear layer to ``vector_length``. No normalisation (see the module docstring).

    ``detail_gain`` g > 0: the first convolution sees :func:`detail` of the images, 2C channels,
    the images and g times their high-pass detail. Not in the Combo method: a style that only
    flattens faint texture (an oil-painting filter on smooth photo regions moves pixels by one
    or two grey levels, 0.01 in [-1, 1]) is nearly invisible to the plain stack, whose
    convolutions respond to that detail about as much as to the image's noise. Measured on 64 px
    crops of the HD painting experiment's A photos against their own oil paintings (same
    content; ``scripts/hd_painting.py``): this network with a linear head, trained as a plain
    classifier for 600 steps of 16 crops, stays at chance (50%, with or without spectral norm);
    with g = 16 it tells them apart 90-95% of the time after 400 steps.
    """

    def __init__(
        self,
        *,
        resolution: int,  # side R of the images judged (2S)
        channels: int,  # image channels C
        vector_length: int = 128,  # LENVEC: length of the output vector
        width: int = 32,  # channels of the first convolution; later ones double
        max_channels: int = 256,  # cap on any layer's channels
        spectral_norm: bool = False,  # spectral norm on every conv and the linear layer
        detail_gain: float = 0.0,  # g > 0: the first conv also sees g x the high-pass detail
    ) -> None:
        super().__init__()
        self.detail_gain = detail_gain
        sides = discriminator_sides(resolution)
        if not sides:
            raise ValueError(
                f"the siamese discriminator needs an even side above 4, not {resolution}"
            )
        layers: list[nn.Module] = []
        fan_in = 2 * channels if detail_gain else channels
        for i in range(len(sides)):
            fan_out = min(width * 2**i, max_channels)
            layers += [nn.Conv2d(fan_in, fan_out, 4, 2, 1), nn.LeakyReLU(0.2)]
            fan_in = fan_out
        layers += [nn.Flatten(), nn.Linear(fan_in * sides[-1] ** 2, vector_length)]
        dcgan_init(nn.ModuleList(layers))  # before spectral norm sees the weights
        self.net = nn.Sequential(
            *(sn(layer, spectral_norm) if isinstance(layer, (nn.Conv2d, nn.Linear)) else layer
              for layer in layers)
        )  # fmt: skip

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.detail_gain:
            images = detail(images, self.detail_gain)
        return self.net(images)
