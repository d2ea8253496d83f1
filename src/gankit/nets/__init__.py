"""Plain nn.Modules: blocks and architectures, parameterised by resolution and width."""

from gankit.nets.dcgan import DCGANDiscriminator, DCGANGenerator, dcgan_stages
from gankit.nets.mlp import MLPDiscriminator, MLPGenerator

__all__ = [
    "DCGANDiscriminator",
    "DCGANGenerator",
    "MLPDiscriminator",
    "MLPGenerator",
    "dcgan_stages",
]
