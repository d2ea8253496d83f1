"""Image-to-image networks: the ResNet translator of CycleGAN, the U-Net of pix2pix and the
PatchGAN discriminator of both, for any channels in and out, width and normalisation.

Every generator here is fully convolutional: (N, C_in, h, w) in any range -> (N, C_out, h, w) in
[-1, 1] (tanh) for any h, w; an input whose sides are not multiples of the network's total stride
is padded (replicating its border) up to them and the output cropped back, so the output always
has the input's size.

Normalisation (``norm``) is one of

- ``"instance"``: :class:`PerImageInstanceNorm2d`, instance norm (Ulyanov et al. 2016; CycleGAN's
  choice) that normalises each image by its own statistics in training *and* evaluation, as the
  reference code's ``InstanceNorm2d(track_running_stats=False)`` does (its ``get_norm_layer``),
  so sample grids, exports and whole-image translation compute the function that was trained.
  It also keeps running averages of those statistics (updated in training only, never used by
  its own forward): they are what ``stats="running"`` of :mod:`gankit.translate` applies, and
  they keep checkpoints written when evaluation used them (``track_running_stats=True``)
  loadable as they are.
- ``"batch"``: :class:`PerImageBatchNorm2d` (pix2pix's choice): batch statistics in training;
  in evaluation each image is normalised by its own statistics, the statistics of a test batch
  of one (pix2pix section 3.3: "we apply batch normalization using the statistics of the test
  batch"; the reference tests with batch size 1). Running averages are kept as for instance
  norm.
- ``"none"``: no normalisation.

Tiles of a large image must not be normalised by their own statistics (seams):
:mod:`gankit.translate.statistics` gives every layer the statistics of the whole image instead.

Convolutions followed by a norm layer have no bias (the norm's shift replaces it, and a bias
before a normalisation would get no gradient). Weights start from N(0, 0.02), norm scales from
N(1, 0.02) and shifts at 0 (pix2pix appendix 6.2; CycleGAN appendix 7.1).
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from gankit.errors import ConfigError

Norm = Literal["instance", "batch", "none"]
NORMS: tuple[str, ...] = get_args(Norm)


class PerImageInstanceNorm2d(nn.InstanceNorm2d):
    """(N, C, h, w) -> (N, C, h, w): instance norm with an affine map, each image normalised by
    its own per-channel mean and (biased) variance over h x w in every mode; running averages
    of them are updated in training mode only and never used here (module docstring)."""

    per_image_at_eval = True  # read by gankit.translate.statistics (stats="auto")

    def __init__(self, channels: int) -> None:
        super().__init__(channels, affine=True, track_running_stats=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        running = (self.running_mean, self.running_var) if self.training else (None, None)
        return F.instance_norm(x, *running, self.weight, self.bias, True, self.momentum, self.eps)


class PerImageBatchNorm2d(nn.BatchNorm2d):
    """(N, C, h, w) -> (N, C, h, w): batch norm in training mode (statistics over N, h, w,
    running averages updated); in evaluation mode each image is normalised by its own
    statistics over h x w, as a test batch of one (pix2pix section 3.3)."""

    per_image_at_eval = True  # read by gankit.translate.statistics (stats="auto")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return super().forward(x)
        self._check_input_dim(x)
        return F.instance_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


def norm_layer(kind: Norm, channels: int) -> nn.Module:
    """A normalisation of ``channels`` feature maps that normalises each image by its own
    statistics in evaluation mode (see the module docstring)."""
    if kind == "instance":
        return PerImageInstanceNorm2d(channels)
    if kind == "batch":
        return PerImageBatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"model.norm={kind!r}; valid: {', '.join(NORMS)}")


def normal_init(module: nn.Module) -> None:
    """Convolution weights ~ N(0, 0.02), biases 0; norm scales ~ N(1, 0.02), shifts 0."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, 0.02)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, (nn.BatchNorm2d, nn.InstanceNorm2d)) and layer.affine:
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)


def pad_to_multiple(images: torch.Tensor, multiple: int) -> torch.Tensor:
    """(N, C, h, w) -> (N, C, h', w'), h' and w' the next multiples of ``multiple``, the border
    replicated on the bottom and right (nothing is added when they already are)."""
    height, width = images.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h or pad_w:
        images = F.pad(images, (0, pad_w, 0, pad_h), mode="replicate")
    return images


# --------------------------------------------------------------------------------------------------
# CycleGAN's ResNet translator (Zhu et al. 2017, appendix 7.2; Johnson et al. 2016)


class ResidualBlock(nn.Module):
    """Rk: two 3x3 convolutions of k filters with reflection padding, norm after each, ReLU
    between them, added to the input: (N, k, h, w) -> (N, k, h, w)."""

    def __init__(self, channels: int, norm: Norm = "instance") -> None:
        super().__init__()
        bias = norm == "none"
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect", bias=bias),
            norm_layer(norm, channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect", bias=bias),
            norm_layer(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNetTranslator(nn.Module):
    """images: (N, C_in, h, w) -> (N, C_out, h, w) in [-1, 1] (CycleGAN's generator).

    c7s1-w, d2w, d4w, R4w x ``n_blocks``, u2w, uw, c7s1-C_out (appendix 7.2 with w = 64 and two
    downsamplings: c7s1-64, d128, d256, R256 x 9, u128, u64, c7s1-3). c7s1-k: 7x7 convolution,
    stride 1, norm, ReLU; dk: 3x3 convolution, stride 2, norm, ReLU; uk: 3x3 fractionally
    strided (transposed, stride 1/2) convolution, norm, ReLU. The last c7s1 has no norm and ends
    in tanh so the output lies in [-1, 1], as the authors' code. Every padded convolution pads
    by reflection ("to reduce artifacts", appendix 7.2); the transposed ones cannot.
    Sides that are not multiples of 2**downsamplings are padded and cropped (module docstring).
    """

    def __init__(
        self,
        *,
        in_channels: int,  # C_in: channels of the input images
        out_channels: int,  # C_out: channels of the translated images
        width: int = 64,  # filters of the first c7s1 layer; each d layer doubles them
        n_blocks: int = 9,  # residual blocks (the paper: 9 at 256 px and above, 6 at 128)
        downsamplings: int = 2,  # d layers (and as many u layers)
        norm: Norm = "instance",
    ) -> None:
        super().__init__()
        self.stride = 2**downsamplings
        bias = norm == "none"
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, width, 7, padding=3, padding_mode="reflect", bias=bias),
            norm_layer(norm, width),
            nn.ReLU(),
        ]
        channels = width
        for _ in range(downsamplings):
            layers += [
                nn.Conv2d(channels, 2 * channels, 3, 2, 1, padding_mode="reflect", bias=bias),
                norm_layer(norm, 2 * channels),
                nn.ReLU(),
            ]
            channels *= 2
        layers += [ResidualBlock(channels, norm) for _ in range(n_blocks)]
        for _ in range(downsamplings):
            layers += [
                nn.ConvTranspose2d(channels, channels // 2, 3, 2, 1, output_padding=1, bias=bias),
                norm_layer(norm, channels // 2),
                nn.ReLU(),
            ]
            channels //= 2
        layers += [nn.Conv2d(channels, out_channels, 7, padding=3, padding_mode="reflect")]
        self.layers = nn.Sequential(*layers)
        normal_init(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[-2:]
        output = self.layers(pad_to_multiple(images, self.stride))
        return torch.tanh(output[..., :height, :width])


# --------------------------------------------------------------------------------------------------
# pix2pix's U-Net (Isola et al. 2017, appendix 6.1.1; Ronneberger et al. 2015)


class EvalDropout(nn.Dropout):
    """Element-wise dropout that may stay on in evaluation mode (pix2pix's test-time noise)."""

    def __init__(self, p: float, at_eval: bool = False) -> None:
        super().__init__(p)
        self.at_eval = at_eval

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.p, self.training or self.at_eval)


def unet_depth(resolution: int) -> int:
    """How many times ``resolution`` halves exactly: log2 of it for a power of two (8 at 256,
    the paper's 1x1 bottleneck; 4 at 16), 2 at 28 (a 7x7 bottleneck)."""
    depth = 0
    while resolution > 1 and resolution % 2 == 0:
        resolution, depth = resolution // 2, depth + 1
    return depth


class UNetTranslator(nn.Module):
    """images: (N, C_in, h, w) -> (N, C_out, h, w) in [-1, 1] (pix2pix's generator).

    Encoder of ``num_downs`` 4x4 stride-2 convolutions e_1..e_n with min(w * 2**i, 8w) filters
    (w = 64, n = 8 at 256 px: C64-C128-C256-C512-C512-C512-C512-C512), leaky ReLU (slope 0.2)
    between them, a norm on all but e_1 ("BatchNorm is not applied to the first C64 layer") and
    the 1x1 bottleneck e_n (as the authors' code: a norm over one pixel would zero it). Decoder
    of n - 1 4x4 stride-1/2 transposed convolutions, each taking ReLU of [the previous decoder
    output, the mirrored encoder output] concatenated on channels (the skips) and mirroring the
    encoder's filters (CD512-CD512-CD512-C512-C256-C128-C64 at 256 px), with a norm and, in the
    first ``dropout_layers``, dropout; then ReLU, a transposed convolution to C_out and tanh.
    Sides that are not multiples of 2**num_downs are padded and cropped (module docstring).
    """

    def __init__(
        self,
        *,
        in_channels: int,  # C_in: channels of the input images
        out_channels: int,  # C_out: channels of the translated images
        num_downs: int = 8,  # encoder layers: the input side over the bottleneck's is 2**this
        width: int = 64,  # filters of e_1; each level doubles them up to 8 * width
        norm: Norm = "batch",
        dropout: float = 0.5,  # dropout rate of the first decoder layers ("CD" layers)
        dropout_layers: int = 3,  # how many decoder layers, from the bottleneck up, drop out
        dropout_at_eval: bool = False,  # keep dropout in evaluation mode (the paper's noise z)
    ) -> None:
        super().__init__()
        if num_downs < 1:
            raise ConfigError(f"model.num_downs={num_downs}: the U-Net needs at least 1 level")
        self.stride = 2**num_downs
        widths = [min(width * 2**level, 8 * width) for level in range(num_downs)]
        inner = num_downs - 1
        self.encoder = nn.ModuleList()
        for level, channels in enumerate(widths):
            normed = 0 < level < inner and norm != "none"
            layers: list[nn.Module] = [] if level == 0 else [nn.LeakyReLU(0.2)]
            fan_in = in_channels if level == 0 else widths[level - 1]
            layers.append(nn.Conv2d(fan_in, channels, 4, 2, 1, bias=not normed))
            if normed:
                layers.append(norm_layer(norm, channels))
            self.encoder.append(nn.Sequential(*layers))
        self.decoder = nn.ModuleList()
        for index, level in enumerate(range(inner, 0, -1)):
            fan_in = widths[level] * (1 if level == inner else 2)  # the bottleneck has no skip
            layers = [
                nn.ReLU(),
                nn.ConvTranspose2d(fan_in, widths[level - 1], 4, 2, 1, bias=norm == "none"),
                norm_layer(norm, widths[level - 1]),
            ]
            if index < dropout_layers and dropout > 0:
                layers.append(EvalDropout(dropout, dropout_at_eval))
            self.decoder.append(nn.Sequential(*layers))
        self.to_image = nn.Sequential(
            nn.ReLU(), nn.ConvTranspose2d(widths[0] * (2 if inner else 1), out_channels, 4, 2, 1)
        )
        normal_init(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[-2:]
        h = pad_to_multiple(images, self.stride)
        skips = []
        for layer in self.encoder:
            h = layer(h)
            skips.append(h)
        h = skips.pop()  # the bottleneck e_n
        for layer in self.decoder:
            h = torch.cat([layer(h), skips.pop()], dim=1)
        return torch.tanh(self.to_image(h)[..., :height, :width])


# --------------------------------------------------------------------------------------------------
# PatchGAN (Isola et al. 2017, section 3.2.2 and appendix 6.1.2; Zhu et al. 2017, appendix 7.2)


def patch_receptive_field(layers: int) -> int:
    """The side of the input patch each PatchGAN score sees: 16, 34, 70, 142 for 1..4 layers."""
    field = 1 + 3 + 3  # the two stride-1 4x4 convolutions at the end
    for _ in range(layers):
        field = 2 * field + 2  # a 4x4 stride-2 convolution
    return field


def patch_output_size(size: int, layers: int) -> int:
    """The side of the score map for an input side ``size`` (< 1: too small for ``layers``)."""
    for _ in range(layers):
        size //= 2
    return size - 2


def check_patch_fits(resolution: int, layers: int) -> None:
    """A one-line ConfigError unless a ``layers`` PatchGAN gives at least one score on
    ``resolution`` x ``resolution`` images (it needs resolution >= 3 * 2**layers)."""
    if patch_output_size(resolution, layers) < 1:
        raise ConfigError(
            f"model.d_layers={layers} (a {patch_receptive_field(layers)}-pixel PatchGAN) needs "
            f"data.resolution >= {3 * 2**layers}; got {resolution}: lower model.d_layers or "
            "raise the resolution"
        )


class PatchGANDiscriminator(nn.Module):
    """images: (N, C_in, H, W) -> scores: (N, 1, H', W') raw (no sigmoid), one per overlapping
    patch of :func:`patch_receptive_field` pixels (70 x 70 with ``layers=3``).

    C_w-C_2w-C_4w-C_8w at w = 64 (C64-C128-C256-C512): ``layers`` 4x4 stride-2 convolutions
    (filters doubling, capped at 8w), then a 4x4 stride-1 one, each with norm and leaky ReLU
    (slope 0.2), except no norm on the first; then a 4x4 stride-1 convolution to one channel.
    A conditional discriminator D(x, y) (pix2pix) takes x and y concatenated on channels.
    """

    def __init__(
        self,
        *,
        in_channels: int,  # C_in: image channels (C_a + C_b for a conditional D(x, y))
        width: int = 64,  # filters of the first layer
        layers: int = 3,  # stride-2 convolutions: 1, 2, 3, 4 -> 16, 34, 70, 142 pixel patches
        norm: Norm = "instance",
    ) -> None:
        super().__init__()
        if layers < 1:
            raise ConfigError(f"model.d_layers={layers}: the PatchGAN needs at least 1 layer")
        self.layers, self.receptive_field = layers, patch_receptive_field(layers)
        widths = [min(width * 2**level, 8 * width) for level in range(layers + 1)]
        bias = norm == "none"
        modules: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        for level in range(1, layers + 1):
            stride = 2 if level < layers else 1
            modules += [
                nn.Conv2d(widths[level - 1], widths[level], 4, stride, 1, bias=bias),
                norm_layer(norm, widths[level]),
                nn.LeakyReLU(0.2),
            ]
        modules.append(nn.Conv2d(widths[layers], 1, 4, 1, 1))
        self.net = nn.Sequential(*modules)
        normal_init(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)
