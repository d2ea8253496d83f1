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


def test_dcgan_fully_connected_layers_are_the_infogan_mnist_networks():
    """g_fc / d_fc add InfoGAN's FC 1024 layers (Chen et al. 2016, appendix C.1): z -> FC 1024 ->
    7x7x128 -> 14x14x64 -> 28x28 and 28 -> 14x14x64 -> 7x7x128 -> FC 1024 -> logit."""
    generator = DCGANGenerator(62, 28, 1, width=32, fc=1024)
    discriminator = DCGANDiscriminator(28, 1, width=64, fc=1024)
    assert generator.start_shape == (128, 7, 7)
    assert generator.project.in_features == 1024 and generator.project.out_features == 128 * 49
    assert discriminator.to_logit.in_features == 1024
    assert discriminator.hidden[0].in_features == 128 * 49
    images = generator(torch.randn(4, 62))
    assert images.shape == (4, 1, 28, 28)
    assert discriminator(images).shape == (4,)
    plain = DCGANGenerator(62, 28, 1, width=32)
    assert plain.project.in_features == 62  # fc=0: z straight to the first map, as before
    assert set(plain.state_dict()) < set(generator.state_dict())


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
