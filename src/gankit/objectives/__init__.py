"""GAN families, one module each, registered by name in OBJECTIVES."""

from gankit.objectives import (  # noqa: F401  (registers the families)
    biggan,
    cgan,
    cogan,
    cyclegan,
    dcgan,
    gan,
    lsgan,
    pix2pix,
    progan,
    sagan,
    siamese,
    sngan,
    spade,
    srgan,
    wgan,
    wgan_gp,
)
from gankit.objectives.base import Batch, Objective, Phase, linear_decay
from gankit.objectives.registry import OBJECTIVES

__all__ = ["OBJECTIVES", "Batch", "Objective", "Phase", "linear_decay"]
