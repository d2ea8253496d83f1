"""ProGAN networks (Karras et al. 2018, "Progressive Growing of GANs"), built for the final size.

Both networks hold every block of the final resolution from the start; ``forward`` takes the
growth ``stage`` k (output side ``s0 * 2**k``) and the fade-in weight ``alpha`` in [0, 1]
(section 3, figure 2): while a block fades in, its output is blended with the previous
resolution's path, ``alpha * new + (1 - alpha) * old``; at alpha = 1 the old path is not run.

Building blocks (section 4): equalised learning rate (:class:`EqualizedConv2d`,
:class:`EqualizedLinear`: weights ~ N(0, 1) multiplied at runtime by He's constant
gain / sqrt(fan_in), section 4.1; gain sqrt(2), except 1 on the two linear outputs, G's toRGB
and D's score layer, as in the reference code), pixel-wise feature normalisation in G
(:class:`PixelNorm`, section 4.2) and the minibatch standard deviation in D
(:class:`MinibatchStdDev`, section 3).

Channels at resolution r: min(width * R / r, max_channels), R the final resolution, so the
widest layers are the early, low-resolution ones (the paper's 512 up to 32 x 32, then halving).
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from gankit.errors import ConfigError


def progan_resolutions(resolution: int) -> list[int]:
    """The growth schedule s0, 2 s0, ..., resolution with 4 <= s0 < 8 (32 -> [4, 8, 16, 32])."""
    sizes = [resolution]
    while sizes[0] >= 8 and sizes[0] % 2 == 0:
        sizes.insert(0, sizes[0] // 2)
    if not 4 <= sizes[0] < 8:
        raise ConfigError(
            f"data.resolution={resolution} does not fit ProGAN: it must be s0 * 2**k with "
            "s0 in 4..7 (e.g. 28, 32, 64, 128)"
        )
    return sizes


def check_resolutions(stages: list[int], resolution: int) -> None:
    """Stages must start at 4..7 pixels, double each time and end at data.resolution."""
    doubling = all(b == 2 * a for a, b in itertools.pairwise(stages))
    if not stages or not 4 <= stages[0] < 8 or not doubling or stages[-1] != resolution:
        raise ConfigError(
            f"model.stages={stages}: must start at 4..7 pixels, double at each stage and end at "
            f"data.resolution={resolution} (e.g. {progan_resolutions(resolution)})"
        )


class EqualizedLinear(nn.Module):
    """y = x (c W)^T + b with W ~ N(0, 1), b = 0 and c = gain / sqrt(fan_in) applied at runtime.

    x: (N, in_features) -> (N, out_features). Scaling at runtime rather than at initialisation
    gives every weight the same dynamic range under Adam (section 4.1).
    """

    def __init__(self, in_features: int, out_features: int, gain: float = math.sqrt(2)) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.scale = gain / math.sqrt(in_features)  # He's constant at gain sqrt(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class EqualizedConv2d(nn.Module):
    """A stride-1 'same' convolution with W ~ N(0, 1) scaled at runtime by gain / sqrt(fan_in).

    x: (N, in_channels, H, W) -> (N, out_channels, H, W); fan_in = in_channels * k * k.
    """

    def __init__(
        self, *, in_channels: int, out_channels: int, kernel_size: int, gain: float = math.sqrt(2)
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.scale = gain / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class PixelNorm(nn.Module):
    """b_xy = a_xy / sqrt(mean_j (a^j_xy)^2 + eps) over the C channels (section 4.2, eq. 2).

    x: (N, C, ...) -> same shape, each position's feature vector with unit mean square.
    """

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + self.eps)


class MinibatchStdDev(nn.Module):
    """Appends one feature map: the standard deviation of each feature over a group of samples,
    averaged over features and positions (section 3), computed per group of ``group_size``.

    x: (N, C, H, W) -> (N, C + 1, H, W). Sample n belongs to group n mod (N / G) as in the
    official code; G = the largest divisor of N that is <= group_size.
    """

    def __init__(self, group_size: int = 4, eps: float = 1e-8) -> None:
        super().__init__()
        self.group_size, self.eps = group_size, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        group = next(g for g in range(min(self.group_size, n), 0, -1) if n % g == 0)
        y = x.float().reshape(group, n // group, c, h, w)
        std = (y.var(dim=0, unbiased=False) + self.eps).sqrt()  # (N / G, C, H, W)
        per_group = std.mean(dim=(1, 2, 3))  # (N / G,)
        feature = per_group.repeat(group).to(x.dtype).view(n, 1, 1, 1).expand(n, 1, h, w)
        return torch.cat([x, feature], dim=1)


def _from_sqrt2_output_gain(
    module: nn.Module, state_dict: dict[str, torch.Tensor], prefix: str, *_: object
) -> None:
    """Load hook: weights saved without ``output_gain`` come from a gankit whose linear output
    layers (G's toRGB, D's score) had gain sqrt(2); their stored weights times sqrt(2) compute
    the same function at gain 1, so old checkpoints and exports keep generating the same images.
    """
    marker = prefix + "output_gain"
    if marker in state_dict:
        return
    for name in module.output_weights:  # type: ignore[attr-defined]
        key = prefix + name
        if key in state_dict:
            state_dict[key] = state_dict[key] * math.sqrt(2)  # a new tensor: the caller's stays
    state_dict[marker] = torch.tensor(1.0)


def _channels(resolution: int, final: int, width: int, max_channels: int) -> int:
    return min(width * final // resolution, max_channels)


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2)


class ProGANGenerator(nn.Module):
    """z: (N, latent_dim) -> images (N, C, r, r), r = stages[stage]; linear output (no tanh), so
    values are only roughly in [-1, 1] (callers clamp for display).

    Block 0: pixel-normalised z -> dense to s0 x s0 -> 3x3 conv; block k > 0: nearest 2x upsample
    -> two 3x3 convs; every conv is followed by LeakyReLU(0.2) and pixel norm (appendix A.1).
    One 1x1 toRGB per resolution, linear and with gain 1 (as the reference code's ``torgb``:
    He's gain sqrt(2) is for layers followed by a leaky ReLU).

    The persistent buffers ``trained_stage`` / ``trained_alpha`` record where the training
    schedule last was, so an export samples at the resolution it was trained to (the objective
    keeps them up to date).
    """

    def __init__(
        self,
        *,
        latent_dim: int,  # length of z
        stages: list[int],  # resolutions of the growth stages, e.g. [4, 8, 16, 32]
        channels: int,  # image channels C
        width: int = 16,  # channels at the final resolution; doubled per halving of resolution
        max_channels: int = 512,  # cap on any layer's channels
    ) -> None:
        super().__init__()
        self.latent_dim, self.stages = latent_dim, list(stages)
        final, start = stages[-1], stages[0]
        widths = [_channels(r, final, width, max_channels) for r in stages]
        self.normalize = PixelNorm()
        # The paper's first layer is a 4x4 convolution of the 1x1 latent (Table 2): He's constant
        # with fan_in = latent_dim * s0 * s0, i.e. gain sqrt(2) / s0 on this dense equivalent.
        self.first = EqualizedLinear(latent_dim, widths[0] * start * start, math.sqrt(2) / start)
        self.first_conv = EqualizedConv2d(
            in_channels=widths[0], out_channels=widths[0], kernel_size=3
        )
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"),
                EqualizedConv2d(in_channels=fan_in, out_channels=fan_out, kernel_size=3),
                _act(),
                PixelNorm(),
                EqualizedConv2d(in_channels=fan_out, out_channels=fan_out, kernel_size=3),
                _act(),
                PixelNorm(),
            )
            for fan_in, fan_out in itertools.pairwise(widths)
        )
        self.to_rgb = nn.ModuleList(
            EqualizedConv2d(in_channels=c, out_channels=channels, kernel_size=1, gain=1.0)
            for c in widths
        )
        self.start_shape = (widths[0], start, start)
        self.register_buffer("trained_stage", torch.tensor(len(stages) - 1, dtype=torch.int64))
        self.register_buffer("trained_alpha", torch.tensor(1.0))
        # The toRGB gain, saved so that weights from before gain 1 are converted on loading.
        self.register_buffer("output_gain", torch.tensor(1.0))
        self.output_weights = tuple(f"to_rgb.{i}.weight" for i in range(len(widths)))
        self.register_load_state_dict_pre_hook(_from_sqrt2_output_gain)

    def forward(self, z: torch.Tensor, stage: int, alpha: float = 1.0) -> torch.Tensor:
        hidden = self.first(self.normalize(z)).view(z.shape[0], *self.start_shape)
        hidden = self.normalize(F.leaky_relu(hidden, 0.2))
        hidden = self.normalize(F.leaky_relu(self.first_conv(hidden), 0.2))
        for block in self.blocks[: max(stage - 1, 0)]:
            hidden = block(hidden)
        if stage == 0:
            return self.to_rgb[0](hidden)
        new = self.to_rgb[stage](self.blocks[stage - 1](hidden))
        if alpha >= 1.0:
            return new
        old = F.interpolate(self.to_rgb[stage - 1](hidden), scale_factor=2, mode="nearest")
        return torch.lerp(old, new, alpha)


class ProGANDiscriminator(nn.Module):
    """images (N, C, r, r), r = stages[stage] -> scores (N,) (a WGAN critic: no sigmoid).

    One 1x1 fromRGB (+ LeakyReLU) per resolution; block k > 0: two 3x3 convs -> 2x2 average
    pool; the last block: minibatch stddev -> 3x3 conv -> dense (the paper's 4x4 conv) -> dense
    to one score. LeakyReLU(0.2) after every hidden layer, no normalisation (appendix A.1).
    The score layer is linear with gain 1 (the reference code's last dense layer), every other
    layer has He's gain sqrt(2).
    """

    def __init__(
        self,
        *,
        stages: list[int],  # resolutions of the growth stages, e.g. [4, 8, 16, 32]
        channels: int,  # image channels C
        width: int = 16,  # channels at the final resolution; doubled per halving of resolution
        max_channels: int = 512,  # cap on any layer's channels
        group_size: int = 4,  # minibatch-stddev group size
    ) -> None:
        super().__init__()
        self.stages = list(stages)
        final, start = stages[-1], stages[0]
        widths = [_channels(r, final, width, max_channels) for r in stages]
        self.from_rgb = nn.ModuleList(
            nn.Sequential(
                EqualizedConv2d(in_channels=channels, out_channels=c, kernel_size=1), _act()
            )
            for c in widths
        )
        # blocks[k - 1] takes resolution stages[k] with widths[k] channels to stages[k - 1].
        self.blocks = nn.ModuleList(
            nn.Sequential(
                EqualizedConv2d(in_channels=fan_in, out_channels=fan_in, kernel_size=3),
                _act(),
                EqualizedConv2d(in_channels=fan_in, out_channels=fan_out, kernel_size=3),
                _act(),
                nn.AvgPool2d(2),
            )
            for fan_out, fan_in in itertools.pairwise(widths)
        )
        top = widths[0]
        self.last = nn.Sequential(
            MinibatchStdDev(group_size),
            EqualizedConv2d(in_channels=top + 1, out_channels=top, kernel_size=3), _act(),
            nn.Flatten(),
            EqualizedLinear(top * start * start, top), _act(),
            EqualizedLinear(top, 1, gain=1.0),
        )  # fmt: skip
        # The score layer's gain, saved so that weights from before gain 1 are converted.
        self.register_buffer("output_gain", torch.tensor(1.0))
        self.output_weights = (f"last.{len(self.last) - 1}.weight",)
        self.register_load_state_dict_pre_hook(_from_sqrt2_output_gain)

    def forward(self, images: torch.Tensor, stage: int, alpha: float = 1.0) -> torch.Tensor:
        hidden = self.from_rgb[stage](images)
        if stage > 0:
            hidden = self.blocks[stage - 1](hidden)
            if alpha < 1.0:
                old = self.from_rgb[stage - 1](F.avg_pool2d(images, 2))
                hidden = torch.lerp(old, hidden, alpha)
            for block in reversed(self.blocks[: stage - 1]):
                hidden = block(hidden)
        return self.last(hidden).squeeze(1)
