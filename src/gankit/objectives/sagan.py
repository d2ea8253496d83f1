"""SAGAN: Zhang et al. 2019, "Self-Attention Generative Adversarial Networks".

SNGAN's ResNets and hinge loss (section 3, eq. 4: L_D = E[relu(1 - D(x, y))] +
E[relu(1 + D(G(z), y))], L_G = -E[D(G(z), y)]) with three changes:

- a self-attention block in both G and D (section 3, eqs. 1-3: f, g, h 1x1 convs to C/8
  channels, beta_{j,i} = softmax_i(f(x_i)^T g(x_j)), o_j = v(sum_i beta_{j,i} h(x_i)),
  y = gamma * o + x with gamma initialised to 0), placed on the feature maps of
  ``attention_at`` pixels (the paper's best: 32x32 feature maps of 128x128 images);
- spectral normalisation in the generator as well as the discriminator (section 4.1);
- the two time-scale update rule (Heusel et al. 2017; section 4.2): lr_D = 4e-4, lr_G = 1e-4,
  Adam (beta1, beta2) = (0, 0.9), one D step per G step (section 5); constant learning rates
  (no schedule in the paper or the PyTorch reference implementations; the presets say so).

It is class-conditional like the paper's ImageNet model: conditional batch norm in G and a
projection discriminator (Miyato & Koyama 2018, eq. 3). ``conditional`` defaults to true and
then needs labelled data (a ConfigError otherwise); ``conditional: false`` trains it without
labels (plain BN in G, no projection term).
"""

from __future__ import annotations

from pydantic import Field
from torch import nn

from gankit.nets.resnet import ResNetDiscriminator, ResNetGenerator
from gankit.objectives.registry import OBJECTIVES
from gankit.objectives.sngan import SNGAN, SNGANConfig


class SAGANConfig(SNGANConfig):
    d_steps: int = Field(1, ge=1)  # discriminator steps per generator step (TTUR: 1)
    conditional: bool = True  # class-conditional BN in G + projection D (needs labels)
    attention_at: int | None = Field(32, ge=2)  # feature-map side of the attention; None: none


@OBJECTIVES.register("sagan")
class SAGAN(SNGAN):
    """SNGAN with self-attention in G and D, spectral norm in both, and TTUR learning rates."""

    Config = SAGANConfig
    description = "Zhang et al. 2019: self-attention in G and D, spectral norm in both, TTUR"

    def build(self) -> dict[str, nn.Module]:
        self.check_labels()
        m = self.model_cfg
        channels, resolution, _ = self.image_shape
        return {
            "generator": ResNetGenerator(
                latent_dim=m.latent_dim, resolution=resolution, channels=channels, width=m.g_width,
                num_classes=self.classes, attention_at=m.attention_at, spectral_norm=True,
                max_channels=m.max_channels,
            ),
            "discriminator": ResNetDiscriminator(
                resolution=resolution, channels=channels, width=m.d_width, num_classes=self.classes,
                attention_at=m.attention_at, spectral_norm=True, max_channels=m.max_channels,
            ),
        }  # fmt: skip
