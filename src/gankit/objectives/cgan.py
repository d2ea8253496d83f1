"""CGAN: Mirza & Osindero 2014, "Conditional Generative Adversarial Nets".

GAN's value function with both players conditioned on extra information y, here the class label
(eq. 2):  min_G max_D  E_x[log D(x | y)] + E_z[log(1 - D(G(z | y)))].
D minimises the negated value with real pairs (x, y) from the data and fakes G(z, y') for random
classes y'; G minimises the non-saturating -E[log D(G(z | y') | y')] (Goodfellow et al. 2014,
section 3). Labels are required (a labelled data source).

Networks (``architecture``): ``mlp`` = the paper's MNIST model (section 4.1: z ~ U[0, 1]^100 and
y mapped to 200 and 1000 ReLU units, joined in 1200; D: 240 and 50 units joined in 240, dropout
0.5), with LeakyReLU instead of maxout in D and a tanh output; ``conv`` = DCGAN networks with y
concatenated to z and to the image channels (see nets/conditional.py; ReLU in G, LeakyReLU(0.2)
with ``g_activation=leaky_relu``). The paper trains with SGD (lr 0.1 decayed to 1e-6, momentum
0.5 -> 0.7, batch 100); the presets use Adam 2e-4, beta1 0.5.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from gankit.config import ModelConfig
from gankit.errors import ConfigError, GankitError
from gankit.losses import bce_discriminator_loss, non_saturating_generator_loss
from gankit.nets.conditional import (
    ConditionalConvDiscriminator,
    ConditionalConvGenerator,
    ConditionalMLPDiscriminator,
    ConditionalMLPGenerator,
)
from gankit.nets.dcgan import GeneratorActivation
from gankit.objectives.base import Batch, Objective, discriminator_accuracy, reject_conditions
from gankit.objectives.registry import OBJECTIVES


class CGANConfig(ModelConfig):
    architecture: Literal["mlp", "conv"] = "mlp"  # the paper's MLP, or DCGAN networks
    latent_dim: int = Field(100, ge=1)  # length of z
    noise: Literal["uniform", "normal"] = "uniform"  # z ~ U[0, 1]^d (the paper) or N(0, I)
    real_label: float = Field(1.0, gt=0.5, le=1.0)  # < 1: one-sided label smoothing
    g_hidden: tuple[int, int, int] = (200, 1000, 1200)  # mlp G: z branch, y branch, joint layer
    d_hidden: tuple[int, int, int] = (240, 50, 240)  # mlp D: x branch, y branch, joint layer
    g_dropout: float = Field(0.5, ge=0, lt=1)  # mlp G: dropout after each hidden layer
    d_dropout: float = Field(0.5, ge=0, lt=1)  # mlp D: dropout after each hidden layer
    g_width: int = Field(64, ge=1)  # conv G: DCGAN generator width
    d_width: int = Field(64, ge=1)  # conv D: DCGAN discriminator width
    max_channels: int = Field(512, ge=1)  # conv: cap on the channels of any layer
    g_activation: GeneratorActivation = "relu"  # conv G's hidden layers: ReLU (DCGAN) or leaky_relu


@OBJECTIVES.register("cgan")
class CGAN(Objective):
    """A GAN whose generator and discriminator both see the class label."""

    Config = CGANConfig
    description = "Mirza & Osindero 2014: G(z, y) and D(x, y) on class labels, BCE losses"

    def build(self) -> dict[str, nn.Module]:
        if self.num_classes <= 0:
            raise ConfigError(
                "cgan needs class labels: use mnist, fashion-mnist, cifar10 or mnist-bundled, "
                "or data.source=folder with data.labels=true"
            )
        m, k = self.model_cfg, self.num_classes
        channels, resolution, _ = self.image_shape
        if m.architecture == "conv":
            return {
                "generator": ConditionalConvGenerator(
                    latent_dim=m.latent_dim,
                    num_classes=k,
                    resolution=resolution,
                    channels=channels,
                    width=m.g_width,
                    max_channels=m.max_channels,
                    activation=m.g_activation,
                ),
                "discriminator": ConditionalConvDiscriminator(
                    resolution=resolution,
                    channels=channels,
                    num_classes=k,
                    width=m.d_width,
                    max_channels=m.max_channels,
                ),
            }
        return {
            "generator": ConditionalMLPGenerator(
                latent_dim=m.latent_dim,
                num_classes=k,
                image_shape=self.image_shape,
                hidden=m.g_hidden,
                dropout=m.g_dropout,
            ),
            "discriminator": ConditionalMLPDiscriminator(
                image_shape=self.image_shape, num_classes=k, hidden=m.d_hidden, dropout=m.d_dropout
            ),
        }

    def loss(self, phase: str, batch: Batch | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if phase == "discriminator":
            assert batch is not None and "label" in batch
            return self.discriminator_loss(batch["image"], batch["label"])
        if phase == "generator":
            return self.generator_loss(self.batch_size)
        raise KeyError(phase)

    def discriminator_loss(
        self, real: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """real: (N, C, H, W) in [-1, 1] with labels (N,) int64; fakes of random classes."""
        with torch.no_grad():
            inputs = self.sample_inputs(real.shape[0])
            fake = self.generate(inputs)
        discriminator = self.networks["discriminator"]
        real_logits = discriminator(real, labels)
        fake_logits = discriminator(fake, inputs["label"])
        loss = bce_discriminator_loss(real_logits, fake_logits, self.model_cfg.real_label)
        stats = {
            "loss_d": loss.detach(),
            "d_real": torch.sigmoid(real_logits.detach().float()).mean(),
            "d_fake": torch.sigmoid(fake_logits.detach().float()).mean(),
            "d_accuracy": discriminator_accuracy(real_logits, fake_logits),
        }
        return loss, stats

    def generator_loss(self, n: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """-E[log D(G(z | y) | y)] over n fresh (z, y)."""
        inputs = self.sample_inputs(n)
        fake_logits = self.networks["discriminator"](self.generate(inputs), inputs["label"])
        loss = non_saturating_generator_loss(fake_logits)
        return loss, {"loss_g": loss.detach()}

    def sample_inputs(
        self,
        n: int,
        generator: torch.Generator | None = None,
        labels: torch.Tensor | None = None,  # (n,) int64 classes; None: uniformly random ones
        **conditions: Any,
    ) -> dict[str, torch.Tensor]:
        """{"z": (n, latent_dim), "label": (n,) int64}; z is drawn first, then any labels."""
        reject_conditions(self.family, conditions)
        m, device = self.model_cfg, self.device
        shape = (n, m.latent_dim)
        if m.noise == "uniform":
            z = torch.rand(shape, generator=generator, device=device)
        else:
            z = torch.randn(shape, generator=generator, device=device)
        if labels is None:  # no check needed, and none that would cost a host sync per step
            labels = torch.randint(self.num_classes, (n,), generator=generator, device=device)
        else:
            labels = self.checked_labels(labels, n)
        return {"z": z, "label": labels}

    def checked_labels(self, labels: Any, n: int) -> torch.Tensor:
        """labels as an (n,) int64 tensor on the model's device, or a one-line GankitError."""
        labels = torch.as_tensor(labels)
        if labels.is_floating_point() or labels.is_complex() or labels.shape != (n,):
            shape = tuple(labels.shape)
            raise GankitError(
                f"cgan: labels must be {n} integer classes, got {labels.dtype} {shape}"
            )
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            bad = labels[(labels < 0) | (labels >= self.num_classes)][0].item()
            raise GankitError(
                f"cgan: label {bad} is out of range: classes are 0..{self.num_classes - 1}"
            )
        return labels.to(device=self.device, dtype=torch.int64)

    def generate(
        self, inputs: dict[str, torch.Tensor], network: nn.Module | None = None
    ) -> torch.Tensor:
        return (network or self.networks["generator"])(inputs["z"], inputs["label"])
