"""A DCGAN-shaped critic for the Wasserstein GANs: raw scores, a choice of normalisation.

WGAN (Arjovsky et al. 2017) uses the DCGAN discriminator with batch norm as its critic. WGAN-GP
(Gulrajani et al. 2017) penalises the critic's gradient with respect to each input independently,
which batch norm breaks by mixing the samples of a batch: the paper uses no batch norm in the critic
and recommends layer normalisation as a drop-in replacement (section 4, "No critic batch
normalization").

The score layer has no bias: a Wasserstein critic's loss E[D(G(z))] - E[D(x)] and its gradient
penalty are unchanged by a constant shift of D, so such a bias would never receive a gradient.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from gankit.nets.dcgan import dcgan_init as init_dcgan_weights
from gankit.nets.dcgan import dcgan_stages

CriticNorm = Literal["batch", "layer", "none"]


class DCGANCritic(nn.Module):
    """images: (N, C, R, R) in [-1, 1] -> scores: (N,) unbounded (no sigmoid).

    k strided 4x4 convolutions (LeakyReLU 0.2; the chosen normalisation on all but the first) down
    to s0 x s0, then a linear layer to one score; R = s0 * 2**k as in DCGAN. ``norm="layer"``
    normalises each sample over all of (C, H, W) with a per-channel scale and shift (GroupNorm with
    one group), never across the batch; ``"batch"`` is DCGAN's batch norm (not for penalties).
    """

    def __init__(
        self,
        *,
        resolution: int,  # side R of the images judged
        channels: int,  # image channels C
        width: int = 64,  # channels of the first convolution; later ones double
        max_channels: int = 512,  # cap on any layer's channels
        norm: CriticNorm = "layer",  # batch norm, layer norm per sample, or none
        dcgan_init: bool = False,  # weights ~ N(0, 0.02) as in DCGAN; False: PyTorch's default
    ) -> None:
        super().__init__()
        start, doublings = dcgan_stages(resolution)
        layers: list[nn.Module] = []
        fan_in = channels
        for level in range(doublings):
            fan_out = min(width * 2**level, max_channels)
            normalised = level > 0 and norm != "none"
            # A bias before batch norm is removed by its mean subtraction: none there.
            layers.append(
                nn.Conv2d(fan_in, fan_out, 4, 2, 1, bias=not (normalised and norm == "batch"))
            )
            if normalised:
                layers.append(
                    nn.BatchNorm2d(fan_out) if norm == "batch" else nn.GroupNorm(1, fan_out)
                )
            layers.append(nn.LeakyReLU(0.2))
            fan_in = fan_out
        self.features = nn.Sequential(*layers)
        self.to_score = nn.Linear(fan_in * start * start, 1, bias=False)
        if dcgan_init:
            init_dcgan_weights(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.to_score(self.features(images).flatten(1)).squeeze(1)
