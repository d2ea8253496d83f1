from __future__ import annotations

import pytest
import torch

from gankit.errors import ConfigError
from gankit.nets import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator


@pytest.mark.parametrize("resolution", [28, 32, 48, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_networks_map_noise_to_images_to_logits(resolution, channels):
    generator = DCGANGenerator(16, resolution, channels, width=8)
    discriminator = DCGANDiscriminator(resolution, channels, width=8)
    images = generator(torch.randn(3, 16))
    assert images.shape == (3, channels, resolution, resolution)
    assert images.abs().max() <= 1.0
    assert discriminator(images).shape == (3,)


def test_dcgan_generator_starts_at_4x4x512_for_32_pixels():
    generator = DCGANGenerator(100, 32, 3, width=64)
    assert generator.start_shape == (512, 4, 4)
    assert isinstance(generator.project_act[0], torch.nn.BatchNorm2d)


def test_dcgan_discriminator_has_no_batch_norm_on_its_first_layer():
    discriminator = DCGANDiscriminator(32, 3, width=8)
    layers = list(discriminator.features)
    assert isinstance(layers[0], torch.nn.Conv2d) and isinstance(layers[1], torch.nn.LeakyReLU)
    assert sum(isinstance(layer, torch.nn.BatchNorm2d) for layer in layers) == 2


@pytest.mark.parametrize("resolution", [30, 9, 4])
def test_dcgan_rejects_resolutions_it_cannot_build(resolution):
    with pytest.raises(ConfigError, match=f"data.resolution={resolution}"):
        DCGANGenerator(8, resolution, 1)


def test_mlp_networks_shapes():
    generator = MLPGenerator(10, (1, 12, 12), hidden=(16, 32))
    discriminator = MLPDiscriminator((1, 12, 12), hidden=(32, 16))
    images = generator(torch.randn(5, 10))
    assert images.shape == (5, 1, 12, 12)
    assert discriminator(images).shape == (5,)
