"""pix2pix: Isola, Zhu, Zhou & Efros 2017, "Image-to-Image Translation with Conditional
Adversarial Networks".

A U-Net G maps an image x of domain A to y of domain B; a conditional PatchGAN D(x, y) judges
the pair, x and y concatenated on channels, patch by patch (70 x 70 by default, section 3.2.2).
On paired data (x, y):

- eq. 1, the conditional GAN: L_cGAN(G, D) = E_{x,y}[log D(x, y)] + E_x[log(1 - D(x, G(x)))].
  D maximises it; we minimise its negative divided by 2, "which slows down the rate at which D
  learns relative to G" (section 3.3). G maximises log D(x, G(x)) instead of minimising
  log(1 - D(x, G(x))), the non-saturating form (section 3.3; Goodfellow et al. 2014).
  The per-patch terms are averaged. (Eq. 2 is the unconditional GAN, not used here.)
- eq. 3, L_L1(G) = E_{x,y}[||y - G(x)||_1] (a mean over pixels), weighted by lambda = 100 in
- eq. 4, G* = arg min_G max_D L_cGAN(G, D) + lambda L_L1(G).
- Adam, lr 2e-4, betas (0.5, 0.999), one D step then one G step (section 3.3).

Networks (appendix 6.1): :class:`~gankit.nets.translation.UNetTranslator` (encoder
C64-C128-C256-C512-C512-C512-C512-C512, decoder CD512-CD512-CD512-C512-C256-C128-C64 with skips,
dropout 0.5 in the CD layers) whose depth follows the resolution (``model.num_downs``, by default
as many halvings as the side allows: 8 at 256 px, 4 at 16 px), and
:class:`~gankit.nets.translation.PatchGANDiscriminator` on C_a + C_b channels.

Channels: x has ``data.channels_a`` (default ``data.channels``), y ``data.channels``; D reads
both, C_a + C_b channels.

Normalisation: the paper uses batch norm with batch size 1 or a few, and at test time keeps
dropout and the statistics of the test batch (section 3.3). gankit's evaluation normalises each
image as a test batch of one (``model.norm: batch``, the default; ``instance`` the same, ``none``
has none), without dropout: outputs are deterministic. Tiled inference takes the statistics over
the whole image, estimated from the tiles (:mod:`gankit.translate.statistics`), so no tile is
normalised by itself; running statistics are the ``stats=running`` option.
``model.eval_dropout: true`` keeps the paper's test-time dropout (noise) instead.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from gankit.config import ModelConfig
from gankit.errors import ConfigError
from gankit.losses import bce_discriminator_loss, non_saturating_generator_loss
from gankit.nets.augment import set_image_channels
from gankit.nets.translation import (
    Norm,
    PatchGANDiscriminator,
    UNetTranslator,
    check_patch_fits,
    unet_depth,
)
from gankit.objectives.base import Batch
from gankit.objectives.registry import OBJECTIVES
from gankit.objectives.translation import TranslationObjective


class Pix2PixConfig(ModelConfig):
    g_width: int = Field(64, ge=1)  # filters of the U-Net's first encoder layer (C64)
    d_width: int = Field(64, ge=1)  # filters of the PatchGAN's first layer (C64)
    # U-Net encoder layers; None: as many as data.resolution halves exactly (8 at 256 -> 1x1)
    num_downs: int | None = Field(None, ge=1)
    d_layers: int = Field(3, ge=1)  # PatchGAN stride-2 layers: 3 -> 70x70 patches, 2 -> 34x34
    norm: Norm = "batch"  # batch | instance | none (per-image statistics in evaluation)
    dropout: float = Field(0.5, ge=0, lt=1)  # dropout rate of the decoder's CD layers
    dropout_layers: int = Field(3, ge=0)  # decoder layers with dropout, from the bottleneck up
    eval_dropout: bool = False  # keep dropout in evaluation (the paper's noise; tiles then vary)
    lambda_l1: float = Field(100.0, ge=0)  # lambda of eq. 4


@OBJECTIVES.register("pix2pix")
class Pix2Pix(TranslationObjective):
    """U-Net translator and conditional PatchGAN with the cGAN + lambda L1 loss (eq. 4)."""

    Config = Pix2PixConfig
    description = "Isola et al. 2017: paired A->B, U-Net G, conditional 70x70 PatchGAN, L1 x 100"
    needs_pairs = True

    @property
    def num_downs(self) -> int:
        """U-Net depth: ``model.num_downs``, or the exact halvings of ``data.resolution``."""
        m, resolution = self.model_cfg, self.data_cfg.resolution
        return m.num_downs if m.num_downs is not None else unet_depth(resolution)

    def build(self) -> dict[str, nn.Module]:
        m, data = self.model_cfg, self.data_cfg
        channels_a, channels_b = data.domain_a_channels, data.channels
        check_patch_fits(data.resolution, m.d_layers)
        if self.num_downs < 1:
            raise ConfigError(f"data.resolution={data.resolution} is odd: set model.num_downs")
        discriminator = PatchGANDiscriminator(
            in_channels=channels_a + channels_b, width=m.d_width, layers=m.d_layers, norm=m.norm
        )
        # D reads [x | y]: DiffAugment's colour acts on y alone, its geometry on x and y alike.
        set_image_channels(discriminator, slice(channels_a, channels_a + channels_b))
        return {
            "generator": UNetTranslator(
                in_channels=channels_a, out_channels=channels_b, num_downs=self.num_downs,
                width=m.g_width, norm=m.norm, dropout=m.dropout, dropout_layers=m.dropout_layers,
                dropout_at_eval=m.eval_dropout,
            ),
            "discriminator": discriminator,
        }  # fmt: skip

    def loss(self, phase: str, batch: Batch | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        assert batch is not None
        if phase == "discriminator":
            return self.discriminator_loss(batch["a"], batch["b"])
        if phase == "generator":
            return self.generator_loss(batch["a"], batch["b"])
        raise KeyError(phase)

    def judge(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """D(x, y): x (N, C_a, H, W), y (N, C_b, H, W) -> logits (N, 1, H', W'), one per patch.
        One tensor in, so DiffAugment translates and cuts x and y alike; its colour transform
        changes y only (the condition x keeps its values, as G's input does)."""
        return self.networks["discriminator"](torch.cat([x, y.to(x.dtype)], dim=1))

    def discriminator_loss(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """-L_cGAN / 2 (eq. 1, section 3.3) on real pairs (x, y) and fake pairs (x, G(x)),
        G(x) made without a graph into G. x: (N, C_a, H, W), y: (N, C_b, H, W) in [-1, 1]."""
        with torch.no_grad():
            fake = self.networks["generator"](x)
        real_logits, fake_logits = self.judge(x, y), self.judge(x, fake)
        loss = 0.5 * bce_discriminator_loss(real_logits, fake_logits)
        stats = {
            "loss_d": loss.detach(),
            "d_real": torch.sigmoid(real_logits.detach().float()).mean(),  # D(x, y)
            "d_fake": torch.sigmoid(fake_logits.detach().float()).mean(),  # D(x, G(x))
        }
        return loss, stats

    def generator_terms(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """The unweighted terms {"gan": -E log D(x, G(x)) (non-saturating, section 3.3),
        "l1": E||y - G(x)||_1 (eq. 3)}."""
        fake = self.networks["generator"](x)
        return {
            "gan": non_saturating_generator_loss(self.judge(x, fake)),
            "l1": (y.float() - fake.float()).abs().mean(),
        }

    def generator_loss(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Eq. 4, G's side: -E log D(x, G(x)) + lambda E||y - G(x)||_1."""
        terms = self.generator_terms(x, y)
        loss = terms["gan"] + self.model_cfg.lambda_l1 * terms["l1"]
        stats = {f"loss_{name}": term.detach() for name, term in terms.items()}
        return loss, {"loss_g": loss.detach(), **stats}
