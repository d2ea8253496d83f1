"""CoGAN: Liu & Tuzel 2016, "Coupled Generative Adversarial Networks".

A pair of GANs, one per domain, learns the joint distribution of two domains from unpaired
images of each: the generators g1, g2 share their first layers and the discriminators f1, f2
their last layers (section 3, weight sharing), so the same z yields a corresponding pair.

The objective is eq. 4, the sum of two GAN value functions (Goodfellow et al. 2014, eq. 1):

    V(f1, f2, g1, g2) = E_x1[-log f1(x1)] + E_z[-log(1 - f1(g1(z)))]
                      + E_x2[-log f2(x2)] + E_z[-log(1 - f2(g2(z)))]

minimised by the discriminators; each generator maximises its term with the non-saturating
-E_z[log f(g(z))] by default (``generator_loss``), summed over both domains. Adam lr 2e-4,
betas (0.5, 0.999), batch 128 (section 5).

Domains. Domain A is the training images; domain B is derived from them by ``domain_b``
(the paper's digit experiments, section 5): ``negative`` (x -> -x on [-1, 1]) or ``edges`` (the
Sobel gradient magnitude of the image on [0, 1], divided by 4 so a full black-white step edge
is 1, clamped to [0, 1] and mapped to [-1, 1]). The data stay unpaired: each discriminator step
splits the real batch in two halves; the first half are domain-A images, the second half,
transformed, are domain-B images, so no image is ever shown in both domains.

Sampling. ``generate`` returns each pair side by side, (n, C, R, 2R): domain A on the left,
domain B on the right, so sample grids and ``gankit sample`` show the learned correspondence.
(Metrics computed on these images judge the pairs, not one domain: see ``domain_images``.)
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from gankit.config import ModelConfig
from gankit.data.transforms import edge_map
from gankit.errors import ConfigError
from gankit.losses import (
    bce_discriminator_loss,
    minimax_generator_loss,
    non_saturating_generator_loss,
)
from gankit.nets.cogan import CoupledDiscriminator, CoupledGenerator
from gankit.objectives.base import Batch, Objective, discriminator_accuracy
from gankit.objectives.registry import OBJECTIVES


class CoGANConfig(ModelConfig):
    latent_dim: int = Field(100, ge=1)  # length of z ~ N(0, I), shared by both domains
    domain_b: Literal["negative", "edges"] = "edges"  # how domain B is made from the data
    g_width: int = Field(64, ge=1)  # channels of the generators' last shared map; doubled upwards
    d_width: int = Field(64, ge=1)  # channels of each discriminator's own first layer
    max_channels: int = Field(512, ge=1)  # cap on the channels of any layer
    generator_loss: Literal["non-saturating", "minimax"] = "non-saturating"


def to_domain_b(images: torch.Tensor, kind: str) -> torch.Tensor:
    """Domain-B images (N, C, H, W) in [-1, 1] made from domain-A images in [-1, 1]."""
    if kind == "negative":
        return -images
    if kind == "edges":
        return edge_map(images)
    raise ConfigError(f"model.domain_b={kind!r}: valid: negative, edges")


@OBJECTIVES.register("cogan")
class CoGAN(Objective):
    """Coupled GANs with weight sharing, BCE losses summed over both domains."""

    Config = CoGANConfig
    description = "Liu & Tuzel 2016: coupled G/D pairs with shared layers; samples are pairs"

    def build(self) -> dict[str, nn.Module]:
        if self.batch_size < 2:
            raise ConfigError("cogan needs train.batch_size >= 2 (half the batch per domain)")
        m = self.model_cfg
        channels, resolution, _ = self.image_shape
        return {
            "generator": CoupledGenerator(
                latent_dim=m.latent_dim,
                resolution=resolution,
                channels=channels,
                width=m.g_width,
                max_channels=m.max_channels,
            ),
            "discriminator": CoupledDiscriminator(
                resolution=resolution,
                channels=channels,
                width=m.d_width,
                max_channels=m.max_channels,
            ),
        }

    def loss(self, phase: str, batch: Batch | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if phase == "discriminator":
            assert batch is not None
            return self.discriminator_loss(batch["image"])
        if phase == "generator":
            return self.generator_loss(self.batch_size)
        raise KeyError(phase)

    def split_domains(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, C, H, W) -> (the first N // 2 as domain A, the rest transformed into domain B)."""
        half = images.shape[0] // 2
        return images[:half], to_domain_b(images[half:], self.model_cfg.domain_b)

    def discriminator_loss(
        self, images: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """images: (N, C, H, W) in [-1, 1]; eq. 4 as a loss for f1, f2 (fakes detached)."""
        real_a, real_b = self.split_domains(images)
        with torch.no_grad():
            fake_a, fake_b = self.networks["generator"](self.sample_inputs(real_a.shape[0])["z"])
        discriminator = self.networks["discriminator"]
        real_logits_a, real_logits_b = discriminator(real_a, real_b)
        fake_logits_a, fake_logits_b = discriminator(fake_a, fake_b)
        loss_a = bce_discriminator_loss(real_logits_a, fake_logits_a)
        loss_b = bce_discriminator_loss(real_logits_b, fake_logits_b)
        loss = loss_a + loss_b

        def mean_probability(logits: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(logits.detach().float()).mean()

        stats = {
            "loss_d": loss.detach(),
            "loss_d_a": loss_a.detach(),
            "loss_d_b": loss_b.detach(),
            "d_real_a": mean_probability(real_logits_a),
            "d_fake_a": mean_probability(fake_logits_a),
            "d_real_b": mean_probability(real_logits_b),
            "d_fake_b": mean_probability(fake_logits_b),
            "d_accuracy": (
                discriminator_accuracy(real_logits_a, fake_logits_a)
                + discriminator_accuracy(real_logits_b, fake_logits_b)
            )
            / 2,
        }
        return loss, stats

    def generator_loss(self, n: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Both generators' terms of eq. 4 from one batch of z, summed."""
        fake_a, fake_b = self.networks["generator"](self.sample_inputs(n)["z"])
        logits_a, logits_b = self.networks["discriminator"](fake_a, fake_b)
        if self.model_cfg.generator_loss == "minimax":
            loss_a, loss_b = minimax_generator_loss(logits_a), minimax_generator_loss(logits_b)
        else:
            loss_a = non_saturating_generator_loss(logits_a)
            loss_b = non_saturating_generator_loss(logits_b)
        loss = loss_a + loss_b
        return loss, {
            "loss_g": loss.detach(),
            "loss_g_a": loss_a.detach(),
            "loss_g_b": loss_b.detach(),
        }

    def domain_images(
        self, inputs: dict[str, torch.Tensor], network: nn.Module | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The pair (image_a, image_b), each (n, C, R, R) in [-1, 1], from the same z."""
        return (network or self.networks["generator"])(inputs["z"])

    def generate(
        self, inputs: dict[str, torch.Tensor], network: nn.Module | None = None
    ) -> torch.Tensor:
        """(n, C, R, 2R) in [-1, 1]: domain A's image on the left, domain B's on the right."""
        return torch.cat(self.domain_images(inputs, network), dim=-1)

    def metric_view(self, images: torch.Tensor) -> torch.Tensor:
        """Domain A (the left half): the domain the training images themselves belong to."""
        return images[..., : images.shape[-1] // 2]
