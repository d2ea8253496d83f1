"""DCGAN: Radford et al. 2015, "Unsupervised Representation Learning with Deep Convolutional GANs".

The losses are GAN's (Goodfellow et al. 2014, eq. 1; non-saturating generator loss) with one-sided
label smoothing available (Salimans et al. 2016: real target 0.9). What changes is the networks
(section 3): strided (transposed) convolutions instead of pooling, batch norm in both networks
except D's input layer, ReLU in G (``g_activation=leaky_relu``: LeakyReLU(0.2), an option) and
LeakyReLU(0.2) in D, tanh output; Adam lr 2e-4, beta1 0.5 (section 4). At 64 px the defaults give
the paper's G, 4x4x1024 -> 8x8x512 -> 16x16x256 -> 32x32x128 -> 64x64 (figure 1), and a D that
mirrors it, 128 -> 256 -> 512 -> 4x4x1024 (the authors' code, Newmu/dcgan_code: ngf = ndf = 128);
see nets/dcgan.py for the widths.
"""

from __future__ import annotations

from pydantic import Field
from torch import nn

from gankit.errors import ConfigError
from gankit.nets import DCGANDiscriminator, DCGANGenerator
from gankit.nets.dcgan import GeneratorActivation
from gankit.objectives.gan import GAN, GANConfig
from gankit.objectives.registry import OBJECTIVES


class DCGANConfig(GANConfig):
    g_width: int = Field(64, ge=1)  # G's last hidden map has 2 * g_width channels; doubled up
    d_width: int = Field(128, ge=1)  # D's first layer's channels, doubled downwards (mirrors G)
    max_channels: int = Field(1024, ge=1)  # cap on the channels of any layer (paper: 1024)
    g_activation: GeneratorActivation = "relu"  # G's hidden layers: ReLU (DCGAN) or leaky_relu 0.2
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
        if (m.g_fc or m.d_fc) and self.batch_size < 2:
            raise ConfigError(
                "dcgan with model.g_fc or model.d_fc needs train.batch_size >= 2 (batch norm "
                "after a fully connected layer has one value per unit in a batch of 1)"
            )
        channels, resolution, _ = self.image_shape
        return {
            "generator": DCGANGenerator(
                latent_dim=m.latent_dim,
                resolution=resolution,
                channels=channels,
                width=m.g_width,
                max_channels=m.max_channels,
                dropout=m.g_dropout,
                fc=m.g_fc,
                activation=m.g_activation,
            ),
            "discriminator": DCGANDiscriminator(
                resolution=resolution,
                channels=channels,
                width=m.d_width,
                max_channels=m.max_channels,
                fc=m.d_fc,
            ),
        }
