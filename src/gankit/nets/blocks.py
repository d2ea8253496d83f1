"""Blocks shared by the ResNet GANs (SNGAN, SAGAN, BigGAN): spectral normalisation, pre-activation
residual blocks, self-attention, conditional batch norm and the projection discriminator head.

Every norm layer here takes ``(x, condition)`` so that a generator block does not care which kind it
holds: :class:`PlainBatchNorm2d` ignores the condition, :class:`ClassConditionalBatchNorm2d` reads
class labels, :class:`ConditionalBatchNorm2d` reads a condition vector (BigGAN).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, TypeVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

Init = Literal["xavier", "orthogonal"]
NormFactory = Callable[[int], nn.Module]  # channels -> a norm layer called as norm(x, condition)
M = TypeVar("M", bound=nn.Module)


def sn(module: M, enabled: bool = True) -> M:
    """``module`` with its weight spectrally normalised when ``enabled`` (Miyato et al. 2018).

    W_SN = W / sigma(W) (eq. 8); sigma(W), the largest singular value of W reshaped to
    (out, -1), is estimated by one power iteration per training-mode forward pass (Algorithm 1),
    with u and v kept as buffers. The raw weight is ``parametrizations.weight.original``.
    """
    return spectral_norm(module) if enabled else module


def init_weight(weight: torch.Tensor, init: Init = "xavier", gain: float = 1.0) -> None:
    """Xavier-uniform (Glorot & Bengio 2010; the SNGAN code) or orthogonal (Saxe et al. 2014;
    BigGAN, Brock et al. 2019 section 3) initialisation of a conv/linear/embedding weight."""
    if init == "orthogonal":
        nn.init.orthogonal_(weight, gain)
    else:
        nn.init.xavier_uniform_(weight, gain)


def conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: int,  # 1 or 3; "same" padding
    spectral: bool = False,  # spectral normalisation of the weight
    init: Init = "xavier",
    gain: float = 1.0,  # init gain: sqrt(2) for convolutions followed by ReLU in residual paths
    bias: bool = True,
) -> nn.Conv2d:
    """A stride-1 convolution, initialised before spectral norm sees it (its u, v warm-up)."""
    layer = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)
    init_weight(layer.weight, init, gain)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return sn(layer, spectral)


def linear(
    in_features: int, out_features: int, spectral: bool = False, init: Init = "xavier"
) -> nn.Linear:
    layer = nn.Linear(in_features, out_features)
    init_weight(layer.weight, init)
    nn.init.zeros_(layer.bias)
    return sn(layer, spectral)


def _double(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


# --------------------------------------------------------------------------------------------------
# Normalisation


class PlainBatchNorm2d(nn.BatchNorm2d):
    """nn.BatchNorm2d that accepts (and ignores) a condition, like the conditional norms."""

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(x)


class ConditionalBatchNorm2d(nn.Module):
    """BN without affine parameters, then a gain and bias computed from a condition vector:
    (1 + W_gamma c) * BN(x) + W_beta c (Brock et al. 2019, section 3 and appendix B: the linear
    projections of [z_chunk, shared class embedding] that BigGAN feeds every block).

    x: (N, C, H, W); condition: (N, condition_dim) float -> (N, C, H, W).
    """

    def __init__(
        self,
        *,
        channels: int,
        condition_dim: int,  # length of the condition vector c
        spectral: bool = False,  # spectral norm on the two projections (BigGAN's G)
        init: Init = "xavier",
    ) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gain = linear(condition_dim, channels, spectral, init)
        self.bias = linear(condition_dim, channels, spectral, init)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        assert condition is not None, "ConditionalBatchNorm2d needs a condition vector"
        gain = 1 + self.gain(condition)[:, :, None, None]
        bias = self.bias(condition)[:, :, None, None]
        return gain * self.norm(x) + bias


class ClassConditionalBatchNorm2d(nn.Module):
    """Conditional BN with a gain and bias per class (de Vries et al. 2017; Dumoulin et al. 2017),
    the generator norm of the conditional SNGAN (Miyato & Koyama 2018) and SAGAN.

    The class-embedding front end of :class:`ConditionalBatchNorm2d`: an embedding table is the
    linear map of a one-hot condition. Gains start at 1 and biases at 0 (plain BN at init).
    x: (N, C, H, W); labels: (N,) int64 in [0, num_classes) -> (N, C, H, W).
    """

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(num_classes, channels)
        self.bias = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        assert condition is not None, "ClassConditionalBatchNorm2d needs class labels"
        gain = self.gain(condition)[:, :, None, None]
        bias = self.bias(condition)[:, :, None, None]
        return gain * self.norm(x) + bias


# --------------------------------------------------------------------------------------------------
# Residual blocks (Miyato et al. 2018, appendix B, figure 8; He et al. 2016 pre-activation)


class ResBlockUp(nn.Module):
    """Generator block: (N, C_in, H, W) -> (N, C_out, 2H, 2W).

    main: norm -> ReLU -> upsample x2 (nearest) -> conv3x3 -> norm -> ReLU -> conv3x3
    shortcut: upsample x2 -> conv1x1 (learnable). The norms get ``condition`` (labels, a
    condition vector or None, depending on ``norm``).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        norm: NormFactory = PlainBatchNorm2d,  # channels -> norm layer called as norm(x, cond)
        spectral: bool = False,  # spectral norm on the convolutions (SAGAN, BigGAN)
        init: Init = "xavier",
    ) -> None:
        super().__init__()
        self.norm1 = norm(in_channels)
        self.conv1 = conv2d(in_channels, out_channels, 3, spectral, init, math.sqrt(2))
        self.norm2 = norm(out_channels)
        self.conv2 = conv2d(out_channels, out_channels, 3, spectral, init, math.sqrt(2))
        self.shortcut = conv2d(in_channels, out_channels, 1, spectral, init)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(_double(F.relu(self.norm1(x, condition))))
        h = self.conv2(F.relu(self.norm2(h, condition)))
        return h + self.shortcut(_double(x))


class ResBlockDown(nn.Module):
    """Discriminator block: (N, C_in, H, W) -> (N, C_out, H/2, W/2) (or H, W: downsample=False).

    main: ReLU -> conv3x3 -> ReLU -> conv3x3 -> avgpool 2x2
    shortcut: conv1x1 -> avgpool (identity when the shape is unchanged).
    ``first=True`` is the "optimised" block that reads the image (Miyato et al. 2018, appendix B):
    no leading ReLU, and the shortcut pools before its conv1x1.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        downsample: bool = True,
        first: bool = False,  # the block on the image: no ReLU on the input
        spectral: bool = True,  # spectral norm on every convolution
        init: Init = "xavier",
    ) -> None:
        super().__init__()
        self.downsample, self.first = downsample, first
        self.conv1 = conv2d(in_channels, out_channels, 3, spectral, init, math.sqrt(2))
        self.conv2 = conv2d(out_channels, out_channels, 3, spectral, init, math.sqrt(2))
        learnable = downsample or first or in_channels != out_channels
        self.shortcut = conv2d(in_channels, out_channels, 1, spectral, init) if learnable else None

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2) if self.downsample else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x if self.first else F.relu(x))
        h = self._pool(self.conv2(F.relu(h)))
        if self.shortcut is None:
            return h + x
        if self.first:
            return h + self.shortcut(self._pool(x))
        return h + self._pool(self.shortcut(x))


# --------------------------------------------------------------------------------------------------
# Self-attention and the projection head


class SelfAttention(nn.Module):
    """Self-attention over positions (Zhang et al. 2019, SAGAN, section 3).

    f, g, h: 1x1 convs to C/8 channels; s_ij = f(x_i)^T g(x_j); beta_{j,i} = softmax_i(s_ij)
    (eq. 1); o_j = v(sum_i beta_{j,i} h(x_i)) with v a 1x1 conv back to C (eq. 2);
    y = gamma * o + x with gamma a learnable scalar initialised to 0 (eq. 3), so the block starts
    as the identity. No biases: a bias on f or g would not change the softmax.
    x: (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, channels: int, spectral: bool = False, init: Init = "xavier") -> None:
        super().__init__()
        inner = max(1, channels // 8)  # C-bar = C / k with k = 8 (section 3)
        self.f = conv2d(channels, inner, 1, spectral, init, bias=False)
        self.g = conv2d(channels, inner, 1, spectral, init, bias=False)
        self.h = conv2d(channels, inner, 1, spectral, init, bias=False)
        self.v = conv2d(inner, channels, 1, spectral, init, bias=False)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, height, width = x.shape
        # (N, 1, HW, C-bar): queries g(x_j), keys f(x_i), values h(x_i); no 1/sqrt(d) scaling.
        query, key, value = (
            layer(x).flatten(2).transpose(1, 2).unsqueeze(1) for layer in (self.g, self.f, self.h)
        )
        attended = F.scaled_dot_product_attention(query, key, value, scale=1.0)
        attended = attended.squeeze(1).transpose(1, 2).reshape(n, -1, height, width)
        return self.gamma * self.v(attended) + x


class ProjectionHead(nn.Module):
    """The projection discriminator's output (Miyato & Koyama 2018, eq. 3):
    D(x, y) = psi(phi(x)) + <embed(y), phi(x)>, psi a linear map to one score and embed a class
    embedding (both spectrally normalised in the paper's code). Without classes: psi(phi(x)).

    features: (N, F) = phi(x); labels: (N,) int64 or None -> scores: (N,) raw (no sigmoid).
    """

    def __init__(
        self,
        *,
        features: int,
        num_classes: int = 0,  # 0: unconditional (no projection term)
        spectral: bool = True,
        init: Init = "xavier",
    ) -> None:
        super().__init__()
        self.psi = linear(features, 1, spectral, init)
        self.embed: nn.Embedding | None = None
        if num_classes > 0:
            embed = nn.Embedding(num_classes, features)
            init_weight(embed.weight, init)
            self.embed = sn(embed, spectral)

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        scores = self.psi(features).squeeze(1)
        if self.embed is not None:
            assert labels is not None, "a projection discriminator needs labels"
            scores = scores + (self.embed(labels) * features).sum(1)
        return scores
