"""SPADE / GauGAN: Park, Liu, Wang & Zhu 2019, "Semantic Image Synthesis with Spatially-Adaptive
Normalization". Label map -> image, trained on pairs.

The generator (:class:`gankit.nets.spade.SPADEGenerator`) normalises every layer with SPADE
(eq. 1): parameter-free batch norm (eqs. 2-3) modulated per pixel by gamma(m) and beta(m) from
the label map m. It starts from the downsampled label map (no style encoder). The
discriminator is pix2pixHD's multi-scale PatchGAN (Wang et al. 2018) on the concatenation of
the one-hot label map and the image. Spectral norm where the authors' code puts it (section 4
says "all the layers"; see :mod:`gankit.nets.spade`).

Learning objective (section 4 and appendix A; pix2pixHD eqs. 4-5), summed over the scales k:

    L_D = sum_k E[relu(1 - D_k(m, x))] + E[relu(1 + D_k(m, G(m)))]              (hinge loss)
    L_G = sum_k -E[D_k(m, G(m))] + lambda_FM * L_FM
    L_FM = sum_k sum_i 1/N_i ||D_k^(i)(m, x) - D_k^(i)(m, G(m))||_1   (feature matching)

with D_k^(i) the i-th intermediate stage of the k-th discriminator (its N_i elements; the
scores are not a feature) and lambda_FM = 10. The authors' code averages both terms over the
scales instead of summing them: the same loss up to a factor, which Adam ignores. The
perceptual VGG loss (lambda_VGG = 10) is left out: it needs ImageNet VGG-19 weights, which
gankit does not ship (no torchvision). Two time-scale updates (Heusel et al. 2017): Adam with
lr_G = 1e-4, lr_D = 4e-4, (beta1, beta2) = (0, 0.999).

Label maps are domain A: one-channel uint8 class indices, arriving as v / 127.5 - 1; with
``label_source: threshold`` any grayscale image is quantised into ``num_labels`` classes
instead (e.g. the digits of ``digits-edges``: 2 classes, ink and background).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field
from torch import nn

from gankit.config import ModelConfig
from gankit.data.base import ImageSet
from gankit.errors import ConfigError
from gankit.losses import hinge_discriminator_loss, hinge_generator_loss
from gankit.nets.augment import set_image_channels
from gankit.nets.spade import (
    LabelSource,
    MultiScaleDiscriminator,
    SPADEGenerator,
    label_indices,
    label_palette,
)
from gankit.objectives.base import Batch
from gankit.objectives.registry import OBJECTIVES
from gankit.objectives.translation import TranslationObjective


class SPADEConfig(ModelConfig):
    num_labels: int = Field(151, ge=2, le=256)  # L: classes of the label maps (ADE20K: 150 + 1)
    label_source: LabelSource = "indices"  # indices: stored class ids; threshold: quantise A
    g_width: int = Field(64, ge=1)  # nf: channels of G's last block; earlier blocks double it
    num_upsampling: int = Field(5, ge=1, le=8)  # k: G starts from the map downsampled by 2**k
    g_max_channels: int = Field(1024, ge=1)  # cap on G's channels (16 nf = 1024 in the paper)
    spade_hidden: int = Field(128, ge=1)  # channels of each SPADE modulation net
    d_width: int = Field(64, ge=1)  # channels of each PatchGAN's first stage
    d_layers: int = Field(4, ge=1, le=6)  # strided stages per PatchGAN (n_layers_D)
    d_max_channels: int = Field(512, ge=1)
    d_scales: int = Field(2, ge=1, le=4)  # PatchGANs at 1, 1/2, ... of the size
    fm_weight: float = Field(10.0, ge=0)  # lambda_FM: weight of the feature-matching loss


@OBJECTIVES.register("spade")
class SPADE(TranslationObjective):
    """Label map -> image with SPADE normalisation, multi-scale PatchGAN, hinge + FM losses."""

    Config = SPADEConfig
    description = "Park et al. 2019: SPADE G, multi-scale PatchGAN, hinge + feature matching"
    needs_pairs: ClassVar[bool] = True

    def build(self) -> dict[str, nn.Module]:
        m = self.model_cfg
        channels = self.data_cfg.channels
        discriminator = MultiScaleDiscriminator(
            in_channels=m.num_labels + channels,
            scales=m.d_scales,
            width=m.d_width,
            layers=m.d_layers,
            max_channels=m.d_max_channels,
        )
        # D reads [one-hot labels | image]: DiffAugment's colour must not touch the label planes.
        set_image_channels(discriminator, slice(m.num_labels, m.num_labels + channels))
        return {
            "generator": SPADEGenerator(
                num_labels=m.num_labels, channels=channels, width=m.g_width,
                num_upsampling=m.num_upsampling, hidden=m.spade_hidden,
                max_channels=m.g_max_channels, label_source=m.label_source,
            ),
            "discriminator": discriminator,
        }  # fmt: skip

    def check_data(self, images: ImageSet) -> None:
        """Pairs (A: label maps, B: images); with ``indices`` every stored index < num_labels.

        Domain A is a (N, C, S, S) uint8 tensor, or a list of (C, H_i, W_i) ones (sources that
        keep each image at its own size): one index plane each (or C equal planes).
        """
        super().check_data(images)
        m = self.model_cfg
        maps = [images.images] if isinstance(images.images, torch.Tensor) else images.images
        if any(len(x) and not bool((x == x[..., :1, :, :]).all()) for x in maps):
            raise ConfigError(
                f"spade reads domain A as label maps with one index plane; data.source="
                f"{self.data_cfg.source!r} has colour images there (store label maps as 1-channel "
                "indexed images, data.a_kind=labels)"
            )
        largest = max((int(x.max()) for x in maps if x.numel()), default=0)
        if m.label_source == "indices" and largest >= m.num_labels:
            raise ConfigError(
                f"model.num_labels={m.num_labels} but the label maps hold index {largest}: raise "
                "model.num_labels, or set model.label_source=threshold to quantise images"
            )

    def loss(self, phase: str, batch: Batch | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        assert batch is not None, "both SPADE phases train on pairs"
        if phase == "discriminator":
            return self.discriminator_loss(batch)
        if phase == "generator":
            return self.generator_loss(batch)
        raise KeyError(phase)

    def judge(
        self, labels: torch.Tensor, first: torch.Tensor, second: torch.Tensor
    ) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
        """D on (m, first) and (m, second) as one batch: per scale, per stage, the two halves.

        labels: (N, L, H, W) one-hot; first, second: (N, C, H, W) images. Instance norm is per
        image and spectral norm makes one power iteration per forward, so one pass is exact.
        With DiffAugment each pair is translated and cut as one (labels stay on their pixels)
        and only the image channels are colour-augmented.
        """
        n = labels.shape[0]
        pairs = torch.cat([torch.cat([labels, first], 1), torch.cat([labels, second], 1)])
        outputs = self.networks["discriminator"](pairs.to(first.dtype))
        return [[(stage[:n], stage[n:]) for stage in scale] for scale in outputs]

    def discriminator_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Hinge loss summed over the scales, on real pairs and pairs with G(m) (no G graph)."""
        generator = self.networks["generator"]
        labels, real = generator.one_hot(batch["a"]), batch["b"]
        with torch.no_grad():
            fake = generator.synthesise(labels).to(real.dtype)
        scores = [scale[-1] for scale in self.judge(labels, real, fake)]
        loss = sum(hinge_discriminator_loss(r, f) for r, f in scores)
        assert isinstance(loss, torch.Tensor)
        stats = {
            "loss_d": loss.detach(),
            "d_real": torch.stack([r.detach().float().mean() for r, _ in scores]).mean(),
            "d_fake": torch.stack([f.detach().float().mean() for _, f in scores]).mean(),
        }
        return loss, stats

    def generator_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """-sum_k E[D_k(m, G(m))] + lambda_FM * the feature-matching loss (pix2pixHD eq. 4)."""
        generator = self.networks["generator"]
        labels, real = generator.one_hot(batch["a"]), batch["b"]
        fake = generator.synthesise(labels)
        outputs = self.judge(labels, fake, real)
        adversarial = sum(hinge_generator_loss(scale[-1][0]) for scale in outputs)
        matching = sum(
            (fake_features.float() - real_features.detach().float()).abs().mean()
            for scale in outputs
            for fake_features, real_features in scale[:-1]
        )
        assert isinstance(adversarial, torch.Tensor) and isinstance(matching, torch.Tensor)
        loss = adversarial + self.model_cfg.fm_weight * matching
        stats = {
            "loss_g": loss.detach(),
            "loss_g_adv": adversarial.detach(),
            "loss_fm": matching.detach(),
            "l1": (fake.detach().float() - real.float()).abs().mean(),
        }
        return loss, stats

    def display_input(self, images: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Label images (N, C_a, h, w) -> their classes shown as (N, C_b, H, W) in [-1, 1]:
        gray levels from black (class 0) to white (class L - 1) for grayscale outputs, a
        palette of distinct colours for RGB ones; resized by nearest neighbour."""
        m = self.model_cfg
        indices = label_indices(images, m.num_labels, m.label_source)
        if like.shape[1] == 3:
            shown = label_palette(m.num_labels).to(images.device)[indices].permute(0, 3, 1, 2)
        else:
            levels = indices.float() * (2 / (m.num_labels - 1)) - 1
            shown = levels[:, None].expand(-1, like.shape[1], -1, -1)
        return super().display_input(shown.contiguous(), like)
