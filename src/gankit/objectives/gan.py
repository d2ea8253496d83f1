"""GAN: Goodfellow et al. 2014, "Generative Adversarial Nets", with MLP networks.

The value function (eq. 1):  min_G max_D  E_x[log D(x)] + E_z[log(1 - D(G(z)))].
D minimises the negated value; G minimises either the minimax term E_z[log(1 - D(G(z)))] or, by
default, the non-saturating -E_z[log D(G(z))] the paper recommends early in training (section 3).
One D step per G step (the paper's k = 1).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from gankit.config import ModelConfig
from gankit.losses import (
    bce_discriminator_loss,
    minimax_generator_loss,
    non_saturating_generator_loss,
)
from gankit.nets import MLPDiscriminator, MLPGenerator
from gankit.objectives.base import Batch, Objective, discriminator_accuracy
from gankit.objectives.registry import OBJECTIVES


class GANConfig(ModelConfig):
    latent_dim: int = Field(100, ge=1)  # length of z ~ N(0, I)
    generator_loss: Literal["non-saturating", "minimax"] = "non-saturating"
    real_label: float = Field(1.0, gt=0.5, le=1.0)  # < 1: one-sided label smoothing of D's targets
    g_hidden: tuple[int, ...] = (256, 512, 1024)  # generator hidden widths
    d_hidden: tuple[int, ...] = (1024, 512, 256)  # discriminator hidden widths
    d_dropout: float = Field(0.3, ge=0, lt=1)


@OBJECTIVES.register("gan")
class GAN(Objective):
    """Two-player minimax game between a generator and a discriminator (BCE losses)."""

    Config = GANConfig
    description = "Goodfellow et al. 2014: MLP generator and discriminator, BCE losses"

    def build(self) -> dict[str, nn.Module]:
        m = self.model_cfg
        return {
            "generator": MLPGenerator(m.latent_dim, self.image_shape, m.g_hidden),
            "discriminator": MLPDiscriminator(self.image_shape, m.d_hidden, m.d_dropout),
        }

    def loss(self, phase: str, batch: Batch | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if phase == "discriminator":
            assert batch is not None
            return self.discriminator_loss(batch["image"])
        if phase == "generator":
            return self.generator_loss(self.batch_size)
        raise KeyError(phase)

    def discriminator_loss(
        self, real: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """real: (N, C, H, W) in [-1, 1]. Fakes are made without a graph into G (detached)."""
        with torch.no_grad():
            fake = self.generate(self.sample_inputs(real.shape[0]))
        discriminator = self.networks["discriminator"]
        real_logits, fake_logits = discriminator(real), discriminator(fake)
        loss = bce_discriminator_loss(real_logits, fake_logits, self.model_cfg.real_label)
        stats = {
            "loss_d": loss.detach(),
            "d_real": torch.sigmoid(real_logits.detach().float()).mean(),
            "d_fake": torch.sigmoid(fake_logits.detach().float()).mean(),
            "d_accuracy": discriminator_accuracy(real_logits, fake_logits),
        }
        return loss, stats

    def generator_loss(self, n: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        fake_logits = self.networks["discriminator"](self.generate(self.sample_inputs(n)))
        if self.model_cfg.generator_loss == "minimax":
            loss = minimax_generator_loss(fake_logits)
        else:
            loss = non_saturating_generator_loss(fake_logits)
        return loss, {"loss_g": loss.detach()}
