"""WGAN: Arjovsky, Chintala & Bottou 2017, "Wasserstein GAN".

The critic D (no sigmoid) estimates the Wasserstein-1 distance through the Kantorovich-Rubinstein
duality (eq. 3):  W(P_r, P_g) = max_{||D||_L <= 1}  E_x[D(x)] - E_z[D(G(z))].
Algorithm 1: n_critic = 5 critic steps, each minimising E_z[D(G(z))] - E_x[D(x)] (lines 6-7) with
RMSprop (alpha = 5e-5), then clipping every critic parameter to [-c, c], c = 0.01 (line 8); then
one generator step minimising -E_z[D(G(z))] (lines 10-12). The clipping keeps D in a family of
K-Lipschitz functions, so the critic's value is W up to the constant K.

Networks: DCGAN's (Radford et al. 2015; ReLU in G, ``g_activation=leaky_relu`` an option), the
critic being the DCGAN discriminator without a sigmoid or a score bias (which a Wasserstein loss
never trains), batch norm included as in the paper's DCGAN-critic experiments (section 4;
``critic_norm`` offers layer norm or none); like the authors' code, clipping applies to every
parameter (batch-norm scales and shifts too) and not to the running statistics. Not reproduced:
the code's 100 critic steps for the first 25 generator steps and every 500th (a heuristic, not in
Algorithm 1).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field
from torch import nn

from gankit.config import ModelConfig
from gankit.losses import wasserstein_critic_loss, wasserstein_generator_loss
from gankit.nets import DCGANGenerator
from gankit.nets.critic import CriticNorm, DCGANCritic
from gankit.nets.dcgan import GeneratorActivation
from gankit.objectives.base import Batch, Objective, Phase, discriminator_accuracy
from gankit.objectives.registry import OBJECTIVES


class WassersteinConfig(ModelConfig):
    """Settings shared by the Wasserstein families (WGAN, WGAN-GP)."""

    latent_dim: int = Field(100, ge=1)  # length of z ~ N(0, I)
    g_width: int = Field(64, ge=1)  # G's last hidden map has 2 * g_width channels; doubled up
    critic_width: int = Field(64, ge=1)  # critic channels of its first layer; doubled downwards
    max_channels: int = Field(512, ge=1)  # cap on the channels of any layer
    g_activation: GeneratorActivation = "relu"  # G's hidden layers: ReLU (DCGAN) or leaky_relu 0.2
    critic_steps: int = Field(5, ge=1)  # n_critic: critic steps per generator step


class WGANConfig(WassersteinConfig):
    clip_value: float = Field(0.01, gt=0)  # c: critic parameters are clipped to [-c, c]
    critic_norm: CriticNorm = "batch"  # normalisation in the critic's hidden layers


class Wasserstein(Objective):
    """The base of WGAN and WGAN-GP (not a family itself): DCGAN's generator and a critic,
    ``critic_steps`` critic steps per generator step, and the Wasserstein terms of Algorithm 1.
    WGAN adds weight clipping, WGAN-GP a gradient penalty."""

    Config = WassersteinConfig
    discriminators = ("critic",)
    dcgan_critic_init: ClassVar[bool] = False  # the critic's DCGAN init (WGAN's code: N(0, 0.02))

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
            "critic": DCGANCritic(
                resolution=resolution,
                channels=channels,
                width=m.critic_width,
                max_channels=m.max_channels,
                norm=m.critic_norm,
                dcgan_init=self.dcgan_critic_init,
            ),
        }

    def phases(self) -> list[Phase]:
        return self.adversarial_phases("critic", self.model_cfg.critic_steps)

    def loss(self, phase: str, batch: Batch | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if phase == "critic":
            assert batch is not None
            return self.critic_loss(batch["image"])
        if phase == "generator":
            return self.generator_loss(self.batch_size)
        raise KeyError(phase)

    def fake_images(self, n: int) -> torch.Tensor:
        """n generated images (n, C, H, W) in [-1, 1] without a graph into G (critic steps)."""
        with torch.no_grad():
            return self.generate(self.sample_inputs(n))

    def wasserstein_terms(
        self, real: torch.Tensor, fake: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """E[D(G(z))] - E[D(x)] (Algorithm 1, line 6) and its statistics.

        real, fake: (N, C, H, W) in [-1, 1]. ``wasserstein`` is E[D(x)] - E[D(G(z))], the critic's
        estimate of W(P_r, P_g) (up to the Lipschitz constant).
        """
        critic = self.networks["critic"]
        real_scores, fake_scores = critic(real), critic(fake)
        loss = wasserstein_critic_loss(real_scores, fake_scores)
        stats = {
            "loss_critic": loss.detach(),
            "wasserstein": -loss.detach(),
            "critic_real": real_scores.detach().float().mean(),
            "critic_fake": fake_scores.detach().float().mean(),
            "d_accuracy": discriminator_accuracy(real_scores, fake_scores, threshold=None),
        }
        return loss, stats

    def critic_loss(self, real: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """real: (N, C, H, W) in [-1, 1]."""
        return self.wasserstein_terms(real, self.fake_images(real.shape[0]))

    def generator_loss(self, n: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """-E[D(G(z))] over n fresh samples (Algorithm 1, line 11)."""
        fake_scores = self.networks["critic"](self.generate(self.sample_inputs(n)))
        loss = wasserstein_generator_loss(fake_scores)
        return loss, {"loss_g": loss.detach()}


@OBJECTIVES.register("wgan")
class WGAN(Wasserstein):
    """A critic trained n_critic times per generator step on the Wasserstein estimate, clipped."""

    Config = WGANConfig
    description = "Arjovsky et al. 2017: Wasserstein critic with weight clipping, 5 critic steps"
    dcgan_critic_init = True

    @torch.no_grad()
    def after_step(self, phase: str) -> None:
        """After each critic step: clip every critic parameter to [-c, c] (Algorithm 1, line 8)."""
        if phase == "critic":
            c = self.model_cfg.clip_value
            for parameter in self.networks["critic"].parameters():
                parameter.clamp_(-c, c)
