"""SPADE / GauGAN networks (Park, Liu, Wang & Zhu 2019, "Semantic Image Synthesis with
Spatially-Adaptive Normalization"): the SPADE layer, SPADE residual blocks, the generator that
starts from the downsampled label map (no style encoder) and the multi-scale PatchGAN
discriminator of pix2pixHD (Wang et al. 2018) that returns its intermediate features.

Label maps enter the generator as the images domain A is stored as: (N, 1, h, w) floats in
[-1, 1] that hold class indices v as v / 127.5 - 1 (``label_source="indices"``), or any
grayscale image quantised into ``num_labels`` equal bins (``label_source="threshold"``). The
generator turns them into one-hot maps (N, L, h, w) itself, so ``generator(a)`` is the whole
translator (what tiling and exports call).

Spectral norm (Miyato et al. 2018) is where the authors' code puts it, not on "all the layers"
as section 4 of the paper says: in G on the convolutions of the SPADE residual blocks (the
"spectral" of their ``norm_G = spectralspadesyncbatch3x3``), not on the head conv (their ``fc``),
the to-image conv (``conv_img``) or the SPADE modulation nets; in each PatchGAN on the inner
convolutions, which ``norm_D = spectralinstance`` wraps as spectral norm + instance norm, not on
the first and the last convolution, which that code builds without a norm layer.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from gankit.errors import GankitError
from gankit.nets.blocks import conv2d, sn

LabelSource = Literal["indices", "threshold"]


def label_indices(
    label_images: torch.Tensor, num_labels: int, source: LabelSource = "indices"
) -> torch.Tensor:
    """Class indices (N, h, w) int64 in [0, num_labels) from label images (N, C, h, w) in [-1, 1].

    ``indices``: the stored uint8 value v came through the loader as v / 127.5 - 1, so
    v = round((a + 1) * 127.5) exactly; a value >= ``num_labels`` is an error (one host sync).
    ``threshold``: a in [-1, 1] quantised into ``num_labels`` equal bins, bin i holding
    [-1 + 2i/L, -1 + 2(i+1)/L) (a = 1 falls in the last), so a binary digit is 2 classes.
    A label map loaded with 3 channels repeats its index plane: the first channel is read.
    """
    if label_images.dim() != 4:
        raise GankitError(f"label maps must be (N, C, h, w), got shape {tuple(label_images.shape)}")
    plane = label_images[:, 0].float()
    if source == "threshold":
        bins = torch.floor((plane + 1) * (num_labels / 2))
        return bins.clamp_(0, num_labels - 1).long()
    indices = torch.round((plane + 1) * 127.5).clamp_(0, 255).long()
    largest = int(indices.max()) if indices.numel() else 0  # a sync point
    if largest >= num_labels:
        raise GankitError(
            f"label map index {largest} >= model.num_labels={num_labels}: set model.num_labels "
            f"above the largest class index, or model.label_source=threshold for images"
        )
    return indices


def one_hot(indices: torch.Tensor, num_labels: int, dtype: torch.dtype) -> torch.Tensor:
    """(N, h, w) int64 class indices -> (N, L, h, w) one-hot maps of ``dtype``."""
    return F.one_hot(indices, num_labels).permute(0, 3, 1, 2).to(dtype).contiguous()


class SPADE(nn.Module):
    """Spatially-adaptive denormalisation (Park et al. 2019, eq. 1; appendix A, figure 10).

    gamma(m) * (h - mu_c) / sigma_c + beta(m): h is normalised by parameter-free batch norm
    (the per-channel batch mean mu_c and deviation sigma_c of eqs. 2-3; synchronised BN in the
    paper, plain BN here; running statistics in evaluation mode), then modulated per pixel by
    gamma and beta computed from the label map m, resized (nearest) to h's size, by a shared
    3x3 conv to ``hidden`` channels + ReLU and one 3x3 conv each for gamma and beta. As in the
    authors' code the scale is written 1 + gamma (gamma = 0 leaves the normalised h as it is).
    The modulation convs are not spectrally normalised (as in the authors' code).

    x: (N, C, H, W); labels: (N, L, h, w) one-hot -> (N, C, H, W).
    """

    def __init__(self, channels: int, num_labels: int, hidden: int = 128) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.shared = nn.Sequential(conv2d(num_labels, hidden, 3), nn.ReLU())
        self.gamma = conv2d(hidden, channels, 3)
        self.beta = conv2d(hidden, channels, 3)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        assert labels is not None, "SPADE needs the one-hot label map"
        labels = F.interpolate(labels.to(x.dtype), size=x.shape[-2:], mode="nearest")
        hidden = self.shared(labels)
        return self.norm(x) * (1 + self.gamma(hidden)) + self.beta(hidden)


class SPADEResBlock(nn.Module):
    """SPADE ResBlk (Park et al. 2019, appendix A, figure 10): (N, C_in, H, W) -> (N, C_out, H, W).

    main: SPADE -> ReLU -> conv3x3 (to min(C_in, C_out)) -> SPADE -> ReLU -> conv3x3;
    shortcut: identity, or the learned skip SPADE -> conv1x1 (no bias) when the channels
    change. Every conv of the block is spectrally normalised when ``spectral`` (as in the
    authors' code; the authors' code uses LeakyReLU(0.2) where figure 10 shows ReLU: we follow
    the figure).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        num_labels: int,
        hidden: int = 128,  # channels of the SPADE modulation nets
        spectral: bool = True,
    ) -> None:
        super().__init__()
        middle = min(in_channels, out_channels)
        self.norm1 = SPADE(in_channels, num_labels, hidden)
        self.conv1 = conv2d(in_channels, middle, 3, spectral)
        self.norm2 = SPADE(middle, num_labels, hidden)
        self.conv2 = conv2d(middle, out_channels, 3, spectral)
        self.shortcut_norm: SPADE | None = None
        self.shortcut_conv: nn.Module | None = None
        if in_channels != out_channels:
            self.shortcut_norm = SPADE(in_channels, num_labels, hidden)
            self.shortcut_conv = conv2d(in_channels, out_channels, 1, spectral, bias=False)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.relu(self.norm1(x, labels)))
        h = self.conv2(F.relu(self.norm2(h, labels)))
        if self.shortcut_conv is None:
            return x + h
        assert self.shortcut_norm is not None
        return self.shortcut_conv(self.shortcut_norm(x, labels)) + h


class SPADEGenerator(nn.Module):
    """Label images (N, 1, h, w) in [-1, 1] -> images (N, C, h, w) in [-1, 1], any h and w.

    The variant without an encoder (Park et al. 2019, section 3, "SPADE generator"; appendix A,
    figure 11): the one-hot map m, downsampled (nearest) by 2**k, goes through a 3x3 conv to
    ``width * 2**(k-1)`` channels; then SPADE ResBlk, upsample x2, two SPADE ResBlks, and k - 1
    times (upsample x2, SPADE ResBlk halving the channels), ending at ``width``; LeakyReLU(0.2),
    3x3 conv, tanh. Every block reads m resized to its own size. k = 5 and width = 64 is the
    paper's 256-pixel generator (1024 channels at 8x8, then 1024, 1024, 512, 256, 128, 64).
    ``spectral`` puts spectral norm on the residual blocks' convs only; the head and to-image
    convs are plain, as in the authors' code (see the module docstring).

    Sides that are not multiples of 2**k are padded (replicating the border labels) to the next
    multiple and the output is cropped back, so the network is fully convolutional. In
    evaluation mode every norm uses its running statistics: a tile's output does not depend on
    the other tiles of its batch.
    """

    def __init__(
        self,
        *,
        num_labels: int,  # L: classes of the label maps (one-hot channels)
        channels: int,  # image channels C of the output
        width: int = 64,  # channels of the last block; earlier ones double (nf in the paper)
        num_upsampling: int = 5,  # k: the input map is 2**k times smaller than the output
        hidden: int = 128,  # channels of each SPADE modulation net (128 in the paper)
        max_channels: int = 1024,  # cap on any block's channels
        label_source: LabelSource = "indices",  # how label images become class indices
        spectral: bool = True,  # spectral norm on the residual blocks' convs (authors' code)
    ) -> None:
        super().__init__()
        self.num_labels, self.num_upsampling, self.label_source = (
            num_labels,
            num_upsampling,
            label_source,
        )
        widths = [min(width * 2 ** (num_upsampling - 1 - j), max_channels)
                  for j in range(num_upsampling)]  # fmt: skip
        top = widths[0]
        self.head_conv = conv2d(num_labels, top, 3)  # plain: the reference's fc
        self.head = SPADEResBlock(
            in_channels=top,
            out_channels=top,
            num_labels=num_labels,
            hidden=hidden,
            spectral=spectral,
        )
        self.middle = nn.ModuleList(
            [
                SPADEResBlock(
                    in_channels=top,
                    out_channels=top,
                    num_labels=num_labels,
                    hidden=hidden,
                    spectral=spectral,
                )
                for _ in range(2)
            ]
        )
        self.up_blocks = nn.ModuleList(
            [
                SPADEResBlock(
                    in_channels=fan_in,
                    out_channels=fan_out,
                    num_labels=num_labels,
                    hidden=hidden,
                    spectral=spectral,
                )
                for fan_in, fan_out in pairwise(widths)
            ]
        )
        self.to_image = conv2d(widths[-1], channels, 3)  # plain: the reference's conv_img

    def one_hot(self, label_images: torch.Tensor) -> torch.Tensor:
        """Label images (N, C_a, h, w) in [-1, 1] -> one-hot maps (N, L, h, w) float32."""
        indices = label_indices(label_images, self.num_labels, self.label_source)
        return one_hot(indices, self.num_labels, torch.float32)

    def synthesise(self, labels: torch.Tensor) -> torch.Tensor:
        """One-hot maps (N, L, h, w) -> images (N, C, h, w) in [-1, 1]."""
        height, width = labels.shape[-2:]
        multiple = 2**self.num_upsampling
        pad_h, pad_w = -height % multiple, -width % multiple
        if pad_h or pad_w:
            labels = F.pad(labels, (0, pad_w, 0, pad_h), mode="replicate")
        start = (labels.shape[-2] // multiple, labels.shape[-1] // multiple)
        h = self.head_conv(F.interpolate(labels, size=start, mode="nearest"))
        h = F.interpolate(self.head(h, labels), scale_factor=2, mode="nearest")
        for block in self.middle:
            h = block(h, labels)
        for block in self.up_blocks:
            h = block(F.interpolate(h, scale_factor=2, mode="nearest"), labels)
        image = torch.tanh(self.to_image(F.leaky_relu(h, 0.2)))
        return image[..., :height, :width]

    def forward(self, label_images: torch.Tensor) -> torch.Tensor:
        return self.synthesise(self.one_hot(label_images))


class PatchDiscriminator(nn.Module):
    """pix2pixHD's PatchGAN (Wang et al. 2018; SPADE's default with ``layers`` = 4):
    (N, C_in, H, W) -> the outputs of its ``layers`` + 1 stages, the last one the patch scores
    (N, 1, H', W') (raw: hinge loss, no sigmoid).

    conv4x4 stride 2 -> LeakyReLU(0.2); then ``layers`` - 1 stages conv4x4 (channels doubled up
    to ``max_channels``; stride 2, the last stride 1; no bias, which the instance norm would
    cancel) -> instance norm -> LeakyReLU(0.2); then conv4x4 stride 1 to one channel. Padding 2
    as in pix2pixHD. With ``spectral`` the inner convs (those before an instance norm) are
    spectrally normalised and the first and last are plain: the authors' ``norm_D =
    spectralinstance`` (module docstring). Instance norm is per image, so real and fake may
    share one batch.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        width: int = 64,  # channels of the first stage
        layers: int = 4,  # strided stages (n_layers_D = 4 in SPADE, 3 in pix2pixHD)
        max_channels: int = 512,
        spectral: bool = True,
    ) -> None:
        super().__init__()

        def conv(fan_in: int, fan_out: int, stride: int) -> nn.Module:
            return nn.Conv2d(fan_in, fan_out, 4, stride, padding=2)

        def normalised_conv(fan_in: int, fan_out: int, stride: int) -> nn.Module:
            layer = nn.Conv2d(fan_in, fan_out, 4, stride, padding=2, bias=False)
            return sn(layer, spectral)

        stages: list[nn.Module] = [nn.Sequential(conv(in_channels, width, 2), nn.LeakyReLU(0.2))]
        channels = width
        for n in range(1, layers):
            fan_out = min(channels * 2, max_channels)
            stride = 1 if n == layers - 1 else 2
            stages.append(
                nn.Sequential(
                    normalised_conv(channels, fan_out, stride),
                    nn.InstanceNorm2d(fan_out),
                    nn.LeakyReLU(0.2),
                )
            )
            channels = fan_out
        stages.append(conv(channels, 1, 1))
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class MultiScaleDiscriminator(nn.Module):
    """``scales`` PatchGANs on the input at 1, 1/2, 1/4... of its size (pix2pixHD, section 3.2;
    each halving is a 3x3 average pooling with stride 2, padding excluded).

    x: (N, L + C, H, W), the one-hot label map concatenated with the image -> a list per scale
    of each PatchGAN's stage outputs (the last of each list: the scores).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        scales: int = 2,  # number of PatchGANs (2 in SPADE's experiments)
        width: int = 64,
        layers: int = 4,
        max_channels: int = 512,
        spectral: bool = True,
    ) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            [
                PatchDiscriminator(
                    in_channels=in_channels,
                    width=width,
                    layers=layers,
                    max_channels=max_channels,
                    spectral=spectral,
                )
                for _ in range(scales)
            ]
        )

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        outputs = []
        for i, discriminator in enumerate(self.discriminators):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(discriminator(x))
        return outputs


def label_palette(num_labels: int) -> torch.Tensor:
    """(L, 3) distinct colours in [-1, 1] for showing label maps: hues spaced by the golden
    angle, class 0 black."""
    hues = torch.arange(num_labels, dtype=torch.float64) * ((math.sqrt(5) - 1) / 2) % 1.0
    sectors = (hues[:, None] * 6 + torch.tensor([5.0, 3.0, 1.0])) % 6  # HSV -> RGB, s = v = 1
    rgb = 1 - torch.clamp(torch.minimum(sectors, 4 - sectors), 0, 1)
    rgb[0] = 0
    return (rgb * 2 - 1).float()
