"""SNGAN: Miyato et al. 2018, "Spectral Normalization for Generative Adversarial Networks".

Every weight of the discriminator is spectrally normalised, W_SN = W / sigma(W) (eq. 8), with
sigma(W) estimated by one power iteration per step (Algorithm 1); the generator uses batch norm and
no spectral norm. The networks are the paper's ResNets (appendix B, figure 8;
:mod:`gankit.nets.resnet`) and the loss is the hinge loss (eq. 16 for D, eq. 17 for G):

    L_D = E_x[relu(1 - D(x))] + E_z[relu(1 + D(G(z)))]        L_G = -E_z[D(G(z))]

with n_dis = 5 discriminator steps per generator step (``d_steps``) and Adam alpha = 2e-4,
(beta1, beta2) = (0, 0.9): the paper's setting for its ResNets (section 4, appendix B). alpha
decays linearly to 0 over the whole run as in the authors' code (pfnet-research/sngan_projection,
``LinearShift`` from iteration 0): the presets set ``train.lr_decay_start: 0``.

``conditional: true`` gives the class-conditional SNGAN of Miyato & Koyama 2018 ("cGANs with
Projection Discriminator"): per-class conditional batch norm in G and the projection head
D(x, y) = psi(phi(x)) + <embed(y), phi(x)> (their eq. 3) in D; it needs labelled data.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch import nn

from gankit.config import ModelConfig
from gankit.errors import ConfigError, GankitError
from gankit.losses import hinge_discriminator_loss, hinge_generator_loss
from gankit.nets.resnet import ResNetDiscriminator, ResNetGenerator
from gankit.objectives.base import (
    Batch,
    Objective,
    Phase,
    discriminator_accuracy,
    reject_conditions,
)
from gankit.objectives.registry import OBJECTIVES


class SNGANConfig(ModelConfig):
    latent_dim: int = Field(128, ge=1)  # length of z ~ N(0, I)
    g_width: int = Field(64, ge=1)  # channels of G's last block; earlier blocks double it
    d_width: int = Field(64, ge=1)  # channels of D's first block; later blocks double it
    max_channels: int = Field(512, ge=1)  # cap on the channels of any layer
    d_steps: int = Field(5, ge=1)  # n_dis: discriminator steps per generator step
    conditional: bool = False  # class-conditional BN in G + projection D (needs labels)


@OBJECTIVES.register("sngan")
class SNGAN(Objective):
    """Hinge-loss GAN with ResNets and a spectrally normalised discriminator."""

    Config = SNGANConfig
    description = "Miyato et al. 2018: ResNet G/D, spectral norm in D, hinge loss, n_dis = 5"

    @property
    def classes(self) -> int:
        """Classes the networks are conditioned on: 0 when ``model.conditional`` is off."""
        return self.num_classes if self.model_cfg.conditional else 0

    def check_labels(self) -> None:
        """A conditional family refuses unlabelled data with a one-line ConfigError."""
        if self.model_cfg.conditional and self.num_classes == 0:
            raise ConfigError(
                f"{self.family} with model.conditional=true needs class labels: use a "
                "labelled dataset (mnist, cifar10, folder with data.labels=true) or set "
                "model.conditional=false"
            )

    def build(self) -> dict[str, nn.Module]:
        self.check_labels()
        m = self.model_cfg
        channels, resolution, _ = self.image_shape
        return {
            "generator": ResNetGenerator(
                latent_dim=m.latent_dim, resolution=resolution, channels=channels, width=m.g_width,
                num_classes=self.classes, spectral_norm=False, max_channels=m.max_channels,
            ),
            "discriminator": ResNetDiscriminator(
                resolution=resolution, channels=channels, width=m.d_width, num_classes=self.classes,
                spectral_norm=True, max_channels=m.max_channels,
            ),
        }  # fmt: skip

    def phases(self) -> list[Phase]:
        return self.adversarial_phases(discriminator_steps=self.model_cfg.d_steps)

    def loss(self, phase: str, batch: Batch | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if phase == "discriminator":
            assert batch is not None
            return self.discriminator_loss(batch)
        if phase == "generator":
            return self.generator_loss(self.batch_size)
        raise KeyError(phase)

    def discriminator_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Hinge loss (eq. 16) on a real batch and as many fakes (made without a graph into G).

        Reals and fakes go through D as one batch: D has no batch norm, so this equals two
        passes, and spectral norm makes one power iteration per step.
        """
        real = batch["image"]
        n = real.shape[0]
        with torch.no_grad():
            inputs = self.sample_inputs(n)
            fake = self.generate(inputs)
        labels = None
        if self.classes:
            labels = torch.cat([batch["label"].to(self.device), inputs["label"]])
        scores = self.networks["discriminator"](torch.cat([real, fake.to(real.dtype)]), labels)
        real_scores, fake_scores = scores[:n], scores[n:]
        loss = hinge_discriminator_loss(real_scores, fake_scores)
        stats = {
            "loss_d": loss.detach(),
            "d_real": real_scores.detach().float().mean(),
            "d_fake": fake_scores.detach().float().mean(),
            "d_accuracy": discriminator_accuracy(real_scores, fake_scores),
        }
        return loss, stats

    def adversarial_generator_loss(self, n: int) -> torch.Tensor:
        """-E[D(G(z), y)] (eq. 17) on n fresh fakes with random classes."""
        inputs = self.sample_inputs(n)
        fake = self.generate(inputs)
        return hinge_generator_loss(self.networks["discriminator"](fake, inputs.get("label")))

    def generator_loss(self, n: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss = self.adversarial_generator_loss(n)
        return loss, {"loss_g": loss.detach()}

    def sample_labels(
        self, n: int, labels: torch.Tensor | None, generator: torch.Generator | None
    ) -> torch.Tensor:
        """(n,) int64 classes on the model's device: ``labels`` checked, or drawn uniformly."""
        if labels is None:
            return torch.randint(0, self.classes, (n,), generator=generator, device=self.device)
        labels = torch.as_tensor(labels, device=self.device)
        if labels.shape != (n,) or labels.dtype != torch.int64:
            raise GankitError(f"labels must be an ({n},) int64 tensor, got {tuple(labels.shape)} "
                              f"{labels.dtype}")  # fmt: skip
        if n and not 0 <= int(labels.min()) <= int(labels.max()) < self.classes:
            raise GankitError(f"labels must lie in [0, {self.classes}), the trained classes")
        return labels

    def sample_inputs(
        self,
        n: int,
        generator: torch.Generator | None = None,
        labels: torch.Tensor | None = None,  # (n,) int64 classes; None: uniformly random
        **conditions: Any,
    ) -> dict[str, torch.Tensor]:
        """{"z": (n, latent_dim) ~ N(0, I)} plus {"label": (n,) int64} when conditional."""
        if not self.classes:
            conditions = {"labels": labels, **conditions}
        reject_conditions(self.family, conditions)
        z = torch.randn(n, self.model_cfg.latent_dim, generator=generator, device=self.device)
        inputs = {"z": z}
        if self.classes:
            inputs["label"] = self.sample_labels(n, labels, generator)
        return inputs

    def generate(
        self, inputs: dict[str, torch.Tensor], network: nn.Module | None = None
    ) -> torch.Tensor:
        """(n, C, H, W) in [-1, 1] from {"z"[, "label"]}."""
        return (network or self.networks["generator"])(inputs["z"], inputs.get("label"))
