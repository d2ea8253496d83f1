"""Fully connected generator and discriminator of the original GAN (Goodfellow et al. 2014)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn


def _mlp(widths: Sequence[int], dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for fan_in, fan_out in itertools.pairwise(widths):
        layers += [nn.Linear(fan_in, fan_out), nn.LeakyReLU(0.2)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    return layers


class MLPGenerator(nn.Module):
    """z: (N, latent_dim) -> images: (N, C, H, W) in [-1, 1] (tanh output)."""

    def __init__(
        self,
        latent_dim: int,  # length of the noise vector z
        image_shape: tuple[int, int, int],  # (C, H, W) of the images made
        hidden: Sequence[int] = (256, 512, 1024),  # hidden layer widths, input side first
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.image_shape = tuple(image_shape)
        self.body = nn.Sequential(*_mlp([latent_dim, *hidden], dropout=0.0))
        self.to_image = nn.Linear(hidden[-1], math.prod(image_shape))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        flat = torch.tanh(self.to_image(self.body(z)))
        return flat.view(z.shape[0], *self.image_shape)


class MLPDiscriminator(nn.Module):
    """images: (N, C, H, W) in [-1, 1] -> logits: (N,) (no sigmoid; the loss applies it)."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],  # (C, H, W) of the images judged
        hidden: Sequence[int] = (1024, 512, 256),  # hidden layer widths, input side first
        dropout: float = 0.3,  # after each hidden layer (the paper: maxout + dropout)
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(*_mlp([math.prod(image_shape), *hidden], dropout))
        self.to_logit = nn.Linear(hidden[-1], 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.to_logit(self.body(images.flatten(1))).squeeze(1)
