"""Class-conditional generators and discriminators for CGAN (Mirza & Osindero 2014).

The label y enters both networks as a one-hot vector: G(z, y) and D(x, y). Two architectures:
- ``mlp``: the paper's MNIST networks (section 4.1). G maps z and y to separate ReLU layers (200
  and 1000 units), joins them into a 1200-unit ReLU layer and outputs the image; D maps x and y to
  separate layers (240 and 50 units), joins them into a 240-unit layer and outputs a logit. The
  paper's D uses maxout units; here LeakyReLU(0.2) + dropout, and the image output is tanh (images
  in [-1, 1]) instead of sigmoid.
- ``conv``: DCGAN networks (Radford et al. 2015) with y concatenated to z in G and broadcast to
  K constant feature maps concatenated to the image channels in D; ReLU in G (LeakyReLU(0.2) as an
  option) and LeakyReLU(0.2) in D, as DCGAN's (see nets.dcgan).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gankit.nets.dcgan import DCGANDiscriminator, DCGANGenerator, GeneratorActivation


def one_hot(labels: torch.Tensor, num_classes: int, like: torch.Tensor) -> torch.Tensor:
    """labels: (N,) int64 in [0, num_classes) -> (N, num_classes) in {0, 1}, like's dtype."""
    return F.one_hot(labels, num_classes).to(dtype=like.dtype)


def _dense(fan_in: int, fan_out: int, activation: nn.Module, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(fan_in, fan_out), activation]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class ConditionalMLPGenerator(nn.Module):
    """(z: (N, latent_dim), labels: (N,) int64) -> images: (N, C, H, W) in [-1, 1]."""

    def __init__(
        self,
        *,
        latent_dim: int,  # length of z
        num_classes: int,  # K: labels are in [0, K)
        image_shape: tuple[int, int, int],  # (C, H, W) of the images made
        hidden: tuple[int, int, int] = (200, 1000, 1200),  # z branch, y branch, joint layer
        dropout: float = 0.5,  # after each hidden layer (the paper: 0.5 in both networks)
    ) -> None:
        super().__init__()
        z_width, y_width, joint_width = hidden
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.image_shape = tuple(image_shape)
        self.from_z = _dense(latent_dim, z_width, nn.ReLU(), dropout)
        self.from_y = _dense(num_classes, y_width, nn.ReLU(), dropout)
        self.joint = _dense(z_width + y_width, joint_width, nn.ReLU(), dropout)
        self.to_image = nn.Linear(joint_width, math.prod(image_shape))

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        y = one_hot(labels, self.num_classes, z)
        hidden = self.joint(torch.cat([self.from_z(z), self.from_y(y)], dim=1))
        return torch.tanh(self.to_image(hidden)).view(z.shape[0], *self.image_shape)


class ConditionalMLPDiscriminator(nn.Module):
    """(images: (N, C, H, W) in [-1, 1], labels: (N,) int64) -> logits: (N,) (no sigmoid)."""

    def __init__(
        self,
        *,
        image_shape: tuple[int, int, int],  # (C, H, W) of the images judged
        num_classes: int,  # K
        hidden: tuple[int, int, int] = (240, 50, 240),  # x branch, y branch, joint layer
        dropout: float = 0.5,  # after each hidden layer
    ) -> None:
        super().__init__()
        x_width, y_width, joint_width = hidden
        self.num_classes = num_classes
        self.from_x = _dense(math.prod(image_shape), x_width, nn.LeakyReLU(0.2), dropout)
        self.from_y = _dense(num_classes, y_width, nn.LeakyReLU(0.2), dropout)
        self.joint = _dense(x_width + y_width, joint_width, nn.LeakyReLU(0.2), dropout)
        self.to_logit = nn.Linear(joint_width, 1)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        y = one_hot(labels, self.num_classes, images)
        hidden = torch.cat([self.from_x(images.flatten(1)), self.from_y(y)], dim=1)
        return self.to_logit(self.joint(hidden)).squeeze(1)


class ConditionalConvGenerator(nn.Module):
    """(z: (N, latent_dim), labels: (N,) int64) -> images: (N, C, R, R) in [-1, 1].

    A DCGAN generator whose input is [z, one_hot(y)] (length latent_dim + K).
    """

    def __init__(
        self,
        *,
        latent_dim: int,  # length of z
        num_classes: int,  # K
        resolution: int,  # side R (s0 * 2**k, see nets.dcgan)
        channels: int,  # image channels C
        width: int = 64,  # DCGAN generator width
        max_channels: int = 1024,  # cap on any layer's channels
        activation: GeneratorActivation = "relu",  # G's hidden activation (DCGAN: ReLU)
    ) -> None:
        super().__init__()
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.body = DCGANGenerator(
            latent_dim=latent_dim + num_classes,
            resolution=resolution,
            channels=channels,
            width=width,
            max_channels=max_channels,
            activation=activation,
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([z, one_hot(labels, self.num_classes, z)], dim=1))


class ConditionalConvDiscriminator(nn.Module):
    """(images: (N, C, R, R) in [-1, 1], labels: (N,) int64) -> logits: (N,).

    A DCGAN discriminator on C + K channels: the image and K constant maps, one_hot(y) broadcast.
    """

    def __init__(
        self,
        *,
        resolution: int,  # side R of the images judged
        channels: int,  # image channels C
        num_classes: int,  # K
        width: int = 64,  # DCGAN discriminator width
        max_channels: int = 1024,  # cap on any layer's channels
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.body = DCGANDiscriminator(
            resolution=resolution,
            channels=channels + num_classes,
            width=width,
            max_channels=max_channels,
        )

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        n, _, height, width = images.shape
        maps = one_hot(labels, self.num_classes, images)[:, :, None, None]
        return self.body(torch.cat([images, maps.expand(n, -1, height, width)], dim=1))
