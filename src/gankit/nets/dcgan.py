"""DCGAN generator and discriminator (Radford et al. 2015), parameterised by resolution.

The generator starts from an s0 x s0 feature map with s0 in [4, 8) and doubles it ``k`` times, so
resolution = s0 * 2**k: 32 -> 4x4 and 3 doublings, 28 -> 7x7 and 2, 64 -> 4x4 and 4.

Both networks can take one fully connected hidden layer between the noise and the first map (G)
and between the last map and the logit (D): the MNIST networks of InfoGAN (Chen et al. 2016,
appendix C.1, FC 1024 in each), which Lucic et al. 2018 ("Are GANs Created Equal?") use for
every GAN family on MNIST.
"""

from __future__ import annotations

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


def _channels(width: int, level: int, max_channels: int) -> int:
    return min(width * 2**level, max_channels)


def _fc_block(fan_in: int, units: int) -> nn.Module:
    """(N, fan_in) -> (N, units): linear -> BN -> LeakyReLU 0.2; units = 0: the identity."""
    if not units:
        return nn.Identity()
    return nn.Sequential(
        nn.Linear(fan_in, units, bias=False), nn.BatchNorm1d(units), nn.LeakyReLU(0.2)
    )


class DCGANGenerator(nn.Module):
    """z: (N, latent_dim) -> images: (N, C, R, R) in [-1, 1].

    z [-> linear -> fc -> BN -> LeakyReLU] -> linear -> s0 x s0 x (width * 2**k) -> BN ->
    LeakyReLU -> k strided transposed convolutions, halving the channels each time (BN + LeakyReLU
    [+ dropout] between them) -> tanh.
    """

    def __init__(
        self,
        latent_dim: int,  # length of z
        resolution: int,  # side R of the square images made
        channels: int,  # image channels C (1 grayscale, 3 RGB)
        width: int = 64,  # channels of the last hidden map; earlier ones double (4x4x512 at 64)
        max_channels: int = 512,  # cap on any layer's channels
        dropout: float = 0.0,  # dropout after each hidden block (0 = none)
        fc: int = 0,  # units of a fully connected hidden layer before the first map (0 = none)
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        start, doublings = dcgan_stages(resolution)
        top = _channels(width, doublings, max_channels)
        self.start_shape = (top, start, start)
        self.hidden = _fc_block(latent_dim, fc)
        self.project = nn.Linear(fc or latent_dim, top * start * start, bias=False)
        self.project_act = self._norm_act(top, dropout)
        blocks: list[nn.Module] = []
        for level in range(doublings - 1, 0, -1):
            fan_in, fan_out = (
                _channels(width, level + 1, max_channels),
                _channels(width, level, max_channels),
            )
            blocks += [
                nn.ConvTranspose2d(fan_in, fan_out, 4, 2, 1, bias=False),
                *self._norm_act(fan_out, dropout),
            ]
        fan_in = _channels(width, 1, max_channels) if doublings > 1 else top
        blocks += [nn.ConvTranspose2d(fan_in, channels, 4, 2, 1), nn.Tanh()]
        self.blocks = nn.Sequential(*blocks)
        dcgan_init(self)

    @staticmethod
    def _norm_act(channels: int, dropout: float) -> nn.Sequential:
        layers: list[nn.Module] = [nn.BatchNorm2d(channels), nn.LeakyReLU(0.2)]
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
        resolution: int,  # side R of the images judged
        channels: int,  # image channels C
        width: int = 64,  # channels of the first convolution; later ones double
        max_channels: int = 512,  # cap on any layer's channels
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
        self.hidden = _fc_block(flat, fc)
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
