"""SRGAN: Ledig et al. 2017, "Photo-Realistic Single Image Super-Resolution Using a Generative
Adversarial Network". x4 super-resolution: low-resolution image -> high-resolution image.

Networks (figure 4; :mod:`gankit.nets.srgan`): the SRResNet generator (16 residual blocks,
two pixel-shuffle x2 upsamplings, tanh) and the 8-conv VGG-style discriminator. Losses:

    l^SR   = l^SR_X + 1e-3 * l^SR_Gen                                   (eq. 3, perceptual loss)
    l^SR_X = l^SR_MSE = 1/(r^2 W H) sum (I^HR - G(I^LR))^2                (eq. 4, on [-1, 1])
    l^SR_Gen = -log D(G(I^LR))                                          (eq. 6, non-saturating)
    D: -log D(I^HR) - log(1 - D(G(I^LR)))                               (eq. 2, cross-entropy)

both averaged over the batch. The VGG content loss l^SR_VGG/i,j (eq. 5, SRGAN-VGG54) is left out:
it needs ImageNet VGG-19 weights, which gankit does not ship (no torchvision); the content loss
here is the pixel MSE of eq. 4 (the paper's SRGAN-MSE). Adam with lr 1e-4 and beta1 = 0.9
(section 3.2).

Stages (section 3.2): the paper first trains the SRResNet on the MSE alone (10^6 updates at 1e-4)
and uses it to initialise the generator of SRGAN, which is then trained adversarially (10^5
updates at 1e-4, then 10^5 at 1e-5). Here one run does both: the first ``pretrain_steps`` steps
train G on the content loss alone and D not at all (its phase starts at ``pretrain_steps``:
``Phase.start``; D's weights, batch-norm statistics and optimiser stay as initialised). At
``pretrain_steps`` every optimiser's state is cleared (:meth:`SRGAN.resets_optimizers`): the GAN
stage is a new training run in the paper, whose Adam starts with zero moments (D's state is still
empty then; G's SRResNet moments would otherwise carry over). ``lr_drop_step`` divides both
learning rates by 10 from that step on, counted from step 0 of the whole run (the paper's
schedule: ``pretrain_steps`` + 10^5).

Data: ONE domain of high-resolution images ({"image": (B, C, R, R)} from any one-domain source;
for a two-domain set, its domain B). The low-resolution input is made on the fly by bicubic
downsampling x4 with antialiasing (section 3: "bicubic kernel with downsampling factor r = 4"),
clamped to [-1, 1]; R must be a multiple of 4.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from gankit.config import ModelConfig
from gankit.errors import ConfigError
from gankit.losses import bce_discriminator_loss, non_saturating_generator_loss
from gankit.nets.srgan import SRGANDiscriminator, SRResNet, bicubic_downsample
from gankit.objectives.base import Batch, Phase
from gankit.objectives.registry import OBJECTIVES
from gankit.objectives.translation import TranslationObjective


class SRGANConfig(ModelConfig):
    g_width: int = Field(64, ge=1)  # feature channels of the SRResNet (64 in the paper)
    num_blocks: int = Field(16, ge=1)  # B: residual blocks of the SRResNet (16 in the paper)
    d_width: int = Field(64, ge=1)  # channels of D's first conv (64 -> 512 over 8 convs)
    d_dense: int = Field(1024, ge=1)  # units of D's hidden dense layer
    d_pool: int = Field(6, ge=1)  # D pools its last map to d_pool x d_pool (R / 16: the paper)
    adversarial_weight: float = Field(1e-3, ge=0)  # the 10^-3 on l^SR_Gen in eq. 3
    pretrain_steps: int = Field(0, ge=0)  # first steps: content loss alone, no D (SRResNet)
    lr_drop_step: int | None = Field(None, ge=1)  # from this step both lrs x 0.1; None: never


@OBJECTIVES.register("srgan")
class SRGAN(TranslationObjective):
    """x4 super-resolution: SRResNet G, VGG-style D, pixel MSE + 1e-3 x adversarial loss."""

    Config = SRGANConfig
    description = "Ledig et al. 2017: x4 SRResNet G, 8-conv D, MSE content + 1e-3 adversarial loss"
    scale: ClassVar[int] = 4
    needs_two_domains: ClassVar[bool] = False

    training_step: int = 0  # set by set_step(): decides the pretraining stage

    def build(self) -> dict[str, nn.Module]:
        m = self.model_cfg
        channels, resolution, _ = self.image_shape
        if resolution % self.scale:
            raise ConfigError(
                f"data.resolution={resolution}: SRGAN downsamples the training images x"
                f"{self.scale}, so it must be a multiple of {self.scale} (e.g. 32, 96)"
            )
        return {
            "generator": SRResNet(
                channels=channels, width=m.g_width, num_blocks=m.num_blocks, scale=self.scale
            ),
            "discriminator": SRGANDiscriminator(
                channels=channels, width=m.d_width, dense=m.d_dense, pool=m.d_pool
            ),
        }

    def phases(self) -> list[Phase]:
        """D's step on real batches, then G's; D's only from ``pretrain_steps`` on (section 3.2:
        the SRResNet is trained without a discriminator)."""
        discriminator, generator = self.adversarial_phases(generator_needs_data=True)
        return [replace(discriminator, start=self.model_cfg.pretrain_steps), generator]

    def set_step(self, step: int) -> None:
        self.training_step = step

    def resets_optimizers(self, step: int) -> bool:
        """True at the first GAN step, ``pretrain_steps`` (> 0): the GAN stage's optimisers
        start afresh, as the paper's separate training run initialised from the SRResNet."""
        pretrain = self.model_cfg.pretrain_steps
        return pretrain > 0 and step == pretrain

    def lr_factor(self, step: int) -> float:
        drop = self.model_cfg.lr_drop_step
        return 0.1 if drop is not None and step >= drop else 1.0

    @staticmethod
    def high_res(batch: Batch) -> torch.Tensor:
        """The high-resolution targets (B, C, R, R): "image", or domain "b" of a two-domain set."""
        return batch["image"] if "image" in batch else batch["b"]

    def source_images(self, batch: Batch) -> torch.Tensor:
        """The generator's inputs: the targets made small, (B, C, R/4, R/4) in [-1, 1]."""
        return bicubic_downsample(self.high_res(batch), self.scale)

    def loss(self, phase: str, batch: Batch | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        assert batch is not None, "both SRGAN phases train on images"
        if phase == "discriminator":
            return self.discriminator_loss(batch)
        if phase == "generator":
            return self.generator_loss(batch)
        raise KeyError(phase)

    def discriminator_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Cross-entropy (eq. 2) on HR images and G(LR) of the same batch (no graph into G).

        Reals and fakes go through D separately: D has batch norm, so a mixed batch would
        normalise them together.
        """
        real = self.high_res(batch)
        with torch.no_grad():
            fake = self.networks["generator"](bicubic_downsample(real, self.scale))
        discriminator = self.networks["discriminator"]
        real_logits, fake_logits = discriminator(real), discriminator(fake.to(real.dtype))
        loss = bce_discriminator_loss(real_logits, fake_logits)
        stats = {
            "loss_d": loss.detach(),
            "d_real": torch.sigmoid(real_logits.detach().float()).mean(),
            "d_fake": torch.sigmoid(fake_logits.detach().float()).mean(),
        }
        return loss, stats

    @property
    def adversarial_weight(self) -> float:
        """1e-3 of eq. 3, or 0 while pretraining (the SRResNet stage)."""
        m = self.model_cfg
        return 0.0 if self.training_step < m.pretrain_steps else m.adversarial_weight

    def generator_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """l^SR = MSE (eq. 4) + weight x -log D(G(LR)) (eq. 6); D is skipped at weight 0."""
        real = self.high_res(batch)
        fake = self.networks["generator"](bicubic_downsample(real, self.scale))
        content = F.mse_loss(fake.float(), real.float())
        stats = {"loss_content": content.detach(), "psnr": 10 * torch.log10(4 / content.detach())}
        loss = content
        weight = self.adversarial_weight
        if weight > 0:
            adversarial = non_saturating_generator_loss(self.networks["discriminator"](fake))
            loss = content + weight * adversarial
            stats["loss_g_adv"] = adversarial.detach()
        stats["loss_g"] = loss.detach()
        return loss, stats
