"""CoGAN networks (Liu & Tuzel 2016, "Coupled Generative Adversarial Networks"), section 3.

Two generators that share their first layers (the high-level semantics) and differ only in the
last one, which renders the shared representation in each domain; two discriminators that differ
only in their first layer and share the rest. Each pair lives in one module, so the trainer sees
one "generator" and one "discriminator" and optimises the shared weights once.

The shape follows DCGAN (Radford et al. 2015), parameterised by resolution = s0 * 2**k like
:mod:`gankit.nets.dcgan`, with the paper's digit-network choices: batch norm and PReLU in the
generators, PReLU and no normalisation in the discriminators (section 5, digits).
"""

from __future__ import annotations

import torch
from torch import nn

from gankit.nets.dcgan import dcgan_init, dcgan_stages

DOMAINS = ("a", "b")


def _channels(width: int, level: int, max_channels: int) -> int:
    return min(width * 2**level, max_channels)


class CoupledGenerator(nn.Module):
    """z: (N, latent_dim) -> (image_a, image_b), each (N, C, R, R) in [-1, 1], from the same z.

    shared: z -> linear -> s0 x s0 -> BN -> PReLU -> k - 1 strided transposed convs (BN, PReLU);
    heads["a"], heads["b"]: one strided transposed conv each to C channels at R x R -> tanh.
    """

    def __init__(
        self,
        *,
        latent_dim: int,  # length of z
        resolution: int,  # side R of the images of both domains
        channels: int,  # image channels C
        width: int = 64,  # channels of the last shared map; earlier ones double
        max_channels: int = 512,  # cap on any layer's channels
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        start, doublings = dcgan_stages(resolution)
        top = _channels(width, doublings, max_channels)
        layers: list[nn.Module] = [
            nn.Linear(latent_dim, top * start * start, bias=False),
            nn.Unflatten(1, (top, start, start)),
            nn.BatchNorm2d(top),
            nn.PReLU(top),
        ]
        for level in range(doublings - 1, 0, -1):
            fan_in = _channels(width, level + 1, max_channels)
            fan_out = _channels(width, level, max_channels)
            layers += [
                nn.ConvTranspose2d(fan_in, fan_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(fan_out),
                nn.PReLU(fan_out),
            ]
        self.shared = nn.Sequential(*layers)
        last = _channels(width, 1, max_channels) if doublings > 1 else top
        self.heads = nn.ModuleDict(
            {
                d: nn.Sequential(nn.ConvTranspose2d(last, channels, 4, 2, 1), nn.Tanh())
                for d in DOMAINS
            }
        )
        dcgan_init(self)

    def branch(self, domain: str) -> nn.Sequential:
        """Domain ``domain``'s generator z -> image: the shared layers, then its own last layer.

        The returned module is a view over this one's layers (not registered, not saved twice).
        """
        return nn.Sequential(self.shared, self.heads[domain])

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.shared(z)  # computed once for both domains: the shared layers are one set
        return self.heads["a"](hidden), self.heads["b"](hidden)


class CoupledDiscriminator(nn.Module):
    """(images_a, images_b), each (N_a or N_b, C, R, R) in [-1, 1] -> (logits_a, logits_b), (N,).

    heads["a"], heads["b"]: one strided 4x4 conv each (PReLU); shared: k - 1 strided 4x4 convs
    (PReLU) down to s0 x s0, then a linear layer to one logit.
    """

    def __init__(
        self,
        *,
        resolution: int,  # side R of the images of both domains
        channels: int,  # image channels C
        width: int = 64,  # channels of the first (per-domain) convolution; later ones double
        max_channels: int = 512,  # cap on any layer's channels
    ) -> None:
        super().__init__()
        start, doublings = dcgan_stages(resolution)
        first = _channels(width, 0, max_channels)
        self.heads = nn.ModuleDict(
            {
                d: nn.Sequential(nn.Conv2d(channels, first, 4, 2, 1), nn.PReLU(first))
                for d in DOMAINS
            }
        )
        layers: list[nn.Module] = []
        fan_in = first
        for level in range(1, doublings):
            fan_out = _channels(width, level, max_channels)
            layers += [nn.Conv2d(fan_in, fan_out, 4, 2, 1), nn.PReLU(fan_out)]
            fan_in = fan_out
        layers += [nn.Flatten(), nn.Linear(fan_in * start * start, 1)]
        self.shared = nn.Sequential(*layers)
        dcgan_init(self)

    def branch(self, domain: str) -> nn.Sequential:
        """Domain ``domain``'s discriminator images -> (N, 1) logits: its own first layer, then
        the shared ones (a view, not registered)."""
        return nn.Sequential(self.heads[domain], self.shared)

    def forward(
        self, images_a: torch.Tensor, images_b: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits_a = self.shared(self.heads["a"](images_a)).squeeze(1)
        logits_b = self.shared(self.heads["b"](images_b)).squeeze(1)
        return logits_a, logits_b
