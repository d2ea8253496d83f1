"""LSGAN: Mao, Li, Xie, Lau, Wang & Smolley 2017, "Least Squares Generative Adversarial Networks".

The sigmoid cross-entropy of GAN is replaced by least squares on D's raw output (eq. 2):
    min_D  1/2 E_x[(D(x) - b)^2] + 1/2 E_z[(D(G(z)) - a)^2]
    min_G  1/2 E_z[(D(G(z)) - c)^2]
with the a-b-c coding: a = target for fakes, b = target for reals, c = the value G wants D to give
its fakes. b - c = 1 and b - a = 2 (e.g. a = -1, b = 1, c = 0, eq. 8) makes the objective minimise
the Pearson chi^2 divergence (section 3.2.2); the default a = 0, b = 1, c = 1 (eq. 9) makes G
produce samples as real as possible and is what the paper's experiments use.

Networks: DCGAN's (Radford et al. 2015; ReLU in G, ``g_activation=leaky_relu`` an option), D
without a sigmoid; the paper's scene model (a deeper VGG-like network at 112 x 112, figure 3) is
not reproduced. Optimiser (section 4.1): Adam, beta1 = 0.5, lr 2e-4 (the paper raises it to 1e-3
for the LSUN scenes); one D step per G step.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from gankit.config import ModelConfig
from gankit.losses import least_squares_discriminator_loss, least_squares_generator_loss
from gankit.nets import DCGANDiscriminator, DCGANGenerator
from gankit.nets.dcgan import GeneratorActivation
from gankit.objectives.base import discriminator_accuracy
from gankit.objectives.gan import GAN
from gankit.objectives.registry import OBJECTIVES


class LSGANConfig(ModelConfig):
    latent_dim: int = Field(100, ge=1)  # length of z ~ N(0, I)
    g_width: int = Field(64, ge=1)  # G's last hidden map has 2 * g_width channels; doubled up
    d_width: int = Field(64, ge=1)  # discriminator channels of its first layer; doubled downwards
    max_channels: int = Field(512, ge=1)  # cap on the channels of any layer
    g_activation: GeneratorActivation = "relu"  # G's hidden layers: ReLU (DCGAN) or leaky_relu 0.2
    a: float = 0.0  # D's target for generated images (eq. 2)
    b: float = 1.0  # D's target for real images
    c: float = 1.0  # the value G wants D to believe for its images


@OBJECTIVES.register("lsgan")
class LSGAN(GAN):
    """GAN's two phases and sampling with least-squares losses and DCGAN networks."""

    Config = LSGANConfig
    description = "Mao et al. 2017: least-squares losses (a-b-c = 0-1-1), DCGAN networks"

    def build(self) -> dict[str, nn.Module]:
        m = self.model_cfg
        channels, resolution, _ = self.image_shape
        return {
            "generator": DCGANGenerator(
                latent_dim=m.latent_dim,
                resolution=resolution,
                channels=channels,
                width=m.g_width,
                max_channels=m.max_channels,
                activation=m.g_activation,
            ),
            "discriminator": DCGANDiscriminator(
                resolution=resolution,
                channels=channels,
                width=m.d_width,
                max_channels=m.max_channels,
            ),
        }

    def discriminator_loss(
        self, real: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Eq. 2, D's side; real: (N, C, H, W) in [-1, 1], fakes made without a graph into G."""
        with torch.no_grad():
            fake = self.generate(self.sample_inputs(real.shape[0]))
        discriminator, m = self.networks["discriminator"], self.model_cfg
        real_scores, fake_scores = discriminator(real), discriminator(fake)
        loss = least_squares_discriminator_loss(real_scores, fake_scores, a=m.a, b=m.b)
        stats = {
            "loss_d": loss.detach(),
            "d_real": real_scores.detach().float().mean(),  # raw scores: near b when D wins
            "d_fake": fake_scores.detach().float().mean(),  # near a when D wins
            "d_accuracy": discriminator_accuracy(real_scores, fake_scores, (m.a + m.b) / 2),
        }
        return loss, stats

    def generator_loss(self, n: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Eq. 2, G's side, over n fresh samples."""
        fake_scores = self.networks["discriminator"](self.generate(self.sample_inputs(n)))
        loss = least_squares_generator_loss(fake_scores, c=self.model_cfg.c)
        return loss, {"loss_g": loss.detach()}
