"""DCGAN: Radford et al. 2015, "Unsupervised Representation Learning with Deep Convolutional GANs".

The losses are GAN's (Goodfellow et al. 2014, eq. 1; non-saturating generator loss) with one-sided
label smoothing available (Salimans et al. 2016: real target 0.9). What changes is the networks
(section 3): strided (transposed) convolutions instead of pooling, batch norm in both networks
except D's input layer, LeakyReLU, tanh output; Adam lr 2e-4, beta1 0.5 (section 4).
"""

from __future__ import annotations

from pydantic import Field
from torch import nn

from gankit.errors import ConfigError
from gankit.nets import DCGANDiscriminator, DCGANGenerator
from gankit.objectives.gan import GAN, GANConfig
from gankit.objectives.registry import OBJECTIVES


class DCGANConfig(GANConfig):
    g_width: int = Field(64, ge=1)  # generator channels before the image layer; doubled upwards
    d_width: int = Field(64, ge=1)  # discriminator channels of its first layer; doubled downwards
    max_channels: int = Field(512, ge=1)  # cap on the channels of any layer
    g_dropout: float = Field(0.0, ge=0, lt=1)  # dropout in the generator's hidden blocks
    g_fc: int = Field(0, ge=0)  # units of a fully connected layer after z (0 = none; InfoGAN 1024)
    d_fc: int = Field(0, ge=0)  # units of a fully connected layer before D's logit (0 = none)


@OBJECTIVES.register("dcgan")
class DCGAN(GAN):
    """GAN's losses with the convolutional networks of Radford et al. 2015."""

    Config = DCGANConfig
    description = "Radford et al. 2015: convolutional G/D with batch norm, BCE + label smoothing"

    def build(self) -> dict[str, nn.Module]:
        m = self.model_cfg
        if (m.g_fc or m.d_fc) and self.cfg.train.batch_size < 2:
            raise ConfigError(
                "dcgan with model.g_fc or model.d_fc needs train.batch_size >= 2 (batch norm "
                "after a fully connected layer has one value per unit in a batch of 1)"
            )
        channels, resolution, _ = self.image_shape
        return {
            "generator": DCGANGenerator(
                m.latent_dim, resolution, channels, m.g_width, m.max_channels, m.g_dropout, m.g_fc
            ),
            "discriminator": DCGANDiscriminator(
                resolution, channels, m.d_width, m.max_channels, m.d_fc
            ),
        }
