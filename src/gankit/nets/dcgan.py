"""DCGAN generator and discriminator (Radford et al. 2015), parameterised by resolution.

The generator starts from an s0 x s0 feature map with s0 in [4, 8) and doubles it ``k`` times, so
resolution = s0 * 2**k: 32 -> 4x4 and 3 doublings, 28 -> 7x7 and 2, 64 -> 4x4 and 4.

Channels: G's map at level l (side s0 * 2**(k - l), l = k .. 1) has ``width * 2**l`` channels and
D's l-th convolution (l = 0 .. k-1) ``width * 2**l``, both capped at ``max_channels`` (1024).
At 64 px with G width 64 this is the paper's generator (Radford et al. 2015, figure 1): 4x4x1024 ->
8x8x512 -> 16x16x256 -> 32x32x128 -> 64x64x3, which is also the authors' code (Newmu/dcgan_code,
faces: ngf = 128, G's first map ngf * 8). D with width 128 mirrors it, 128 -> 256 -> 512 -> 1024
(the authors' code: ndf = 128); the paper gives no figure for D. The PyTorch example (ngf = ndf =
64) halves both, 4x4x512 at 64 px: G width 32, D width 64 here. We follow the paper and the
authors' code; the cap only matters above 64 px (128 px would start at 2048 channels) and keeps
configs saved with ``max_channels: 512`` (4x4x512 at 64 px) loading as trained.

Activations (section 3, "Architecture guidelines"): ReLU in G except the tanh output, LeakyReLU
(slope 0.2) in all of D. ``activation="leaky_relu"`` puts LeakyReLU(0.2) in G instead: what
gankit's generators used before this option, so what runs saved before it were trained with.

Both networks can take one fully connected hidden layer between the noise and the first map (G)
and between the last map and the logit (D): the MNIST networks of InfoGAN (Chen et al. 2016,
appendix C.1, FC 1024 in each; ReLU in G, LeakyReLU in D, as in the authors' code), which Lucic
et al. 2018 ("Are GANs Created Equal?") use for every GAN family on MNIST.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from gankit.errors import ConfigError


def dcgan_stages(
    resolution: int, networks: str = "DCGAN", examples: str = "28, 32, 48, 64, 128"
) -> tuple[int, int]:
    """(s0, k) with resolution = s0 * 2**k, 4 <= s0 < 8 and k >= 1; ``networks`` and
    ``examples`` name the architecture and its valid sizes in the error."""
    start, doublings = resolution, 0
    while start >= 8 and start % 2 == 0:
        start, doublings = start // 2, doublings + 1
    if not 4 <= start < 8 or doublings == 0:
        raise ConfigError(
            f"data.resolution={resolution} does not fit {networks}: it must be s0 * 2**k with "
            f"s0 in 4..7 and k >= 1 (e.g. {examples})"
        )
    return start, doublings


GeneratorActivation = Literal["relu", "leaky_relu"]


def activation_layer(name: GeneratorActivation) -> nn.Module:
    """``"relu"``: nn.ReLU; ``"leaky_relu"``: nn.LeakyReLU(0.2) (DCGAN's D slope)."""
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(0.2)
    raise ConfigError(f"activation must be relu or leaky_relu, got {name!r}")


def _channels(width: int, level: int, max_channels: int) -> int:
    return min(width * 2**level, max_channels)


def _fc_block(fan_in: int, units: int, activation: GeneratorActivation) -> nn.Module:
    """(N, fan_in) -> (N, units): linear -> BN -> activation; units = 0: the identity."""
    if not units:
        return nn.Identity()
    return nn.Sequential(
        nn.Linear(fan_in, units, bias=False), nn.BatchNorm1d(units), activation_layer(activation)
    )


class DCGANGenerator(nn.Module):
    """z: (N, latent_dim) -> images: (N, C, R, R) in [-1, 1].

    z [-> linear -> fc -> BN -> act] -> linear -> s0 x s0 x (width * 2**k) -> BN -> act -> k
    strided transposed convolutions, halving the channels each time (BN + act [+ dropout] between
    them; the last hidden map has 2 * width channels) -> tanh. act is ReLU (Radford et al. 2015,
    section 3) or, with ``activation="leaky_relu"``, LeakyReLU(0.2).
    """

    def __init__(
        self,
        *,
        latent_dim: int,  # length of z
        resolution: int,  # side R of the square images made
        channels: int,  # image channels C (1 grayscale, 3 RGB)
        width: int = 64,  # half the last hidden map's channels; earlier ones double (1024 at 64)
        max_channels: int = 1024,  # cap on any layer's channels
        dropout: float = 0.0,  # dropout after each hidden block (0 = none)
        fc: int = 0,  # units of a fully connected hidden layer before the first map (0 = none)
        activation: GeneratorActivation = "relu",  # of every hidden layer (the paper: ReLU)
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        start, doublings = dcgan_stages(resolution)
        top = _channels(width, doublings, max_channels)
        self.start_shape = (top, start, start)
        self.hidden = _fc_block(latent_dim, fc, activation)
        self.project = nn.Linear(fc or latent_dim, top * start * start, bias=False)
        self.project_act = self._norm_act(top, dropout, activation)
        blocks: list[nn.Module] = []
        for level in range(doublings - 1, 0, -1):
            fan_in, fan_out = (
                _channels(width, level + 1, max_channels),
                _channels(width, level, max_channels),
            )
            blocks += [
                nn.ConvTranspose2d(fan_in, fan_out, 4, 2, 1, bias=False),
                *self._norm_act(fan_out, dropout, activation),
            ]
        fan_in = _channels(width, 1, max_channels) if doublings > 1 else top
        blocks += [nn.ConvTranspose2d(fan_in, channels, 4, 2, 1), nn.Tanh()]
        self.blocks = nn.Sequential(*blocks)
        dcgan_init(self)

    @staticmethod
    def _norm_act(channels: int, dropout: float, activation: GeneratorActivation) -> nn.Sequential:
        layers: list[nn.Module] = [nn.BatchNorm2d(channels), activation_layer(activation)]
        if dropout > 0:
            layers.append(nn.Dropout2d(dropout))
        return nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        hidden = self.project(self.hidden(z)).view(z.shape[0], *self.start_shape)
        return self.blocks(self.project_act(hidden))


class DCGANDiscriminator(nn.Module):
    """images: (N, C, R, R) in [-1, 1] -> logits: (N,).

    k strided 4x4 convolutions (LeakyReLU 0.2; BN on all but the first) down to s0 x s0
    [-> linear -> fc -> BN -> LeakyReLU], then a linear layer to one logit.
    """

    def __init__(
        self,
        *,
        resolution: int,  # side R of the images judged
        channels: int,  # image channels C
        width: int = 64,  # channels of the first convolution; later ones double
        max_channels: int = 1024,  # cap on any layer's channels
        fc: int = 0,  # units of a fully connected hidden layer before the logit (0 = none)
    ) -> None:
        super().__init__()
        start, doublings = dcgan_stages(resolution)
        layers: list[nn.Module] = []
        fan_in = channels
        for level in range(doublings):
            fan_out = _channels(width, level, max_channels)
            layers.append(nn.Conv2d(fan_in, fan_out, 4, 2, 1, bias=level == 0))
            if level > 0:  # no BN on the first layer (Radford et al. 2015, section 3)
                layers.append(nn.BatchNorm2d(fan_out))
            layers.append(nn.LeakyReLU(0.2))
            fan_in = fan_out
        self.features = nn.Sequential(*layers)
        flat = fan_in * start * start
        self.hidden = _fc_block(flat, fc, "leaky_relu")  # D: LeakyReLU everywhere
        self.to_logit = nn.Linear(fc or flat, 1)
        dcgan_init(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.to_logit(self.hidden(self.features(images).flatten(1))).squeeze(1)


def dcgan_init(module: nn.Module) -> None:
    """Weights ~ N(0, 0.02); norm scales ~ N(1, 0.02), shifts 0 (Radford et al. 2015, sec. 4)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(layer.weight, 0.0, 0.02)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)
