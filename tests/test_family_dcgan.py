"""DCGAN (Radford et al. 2015): the networks' layout, ReLU in G, the 64 px channels, the FC
layers' batch-size rule."""

from __future__ import annotations

import pytest
import torch

from gankit.config import load_yaml, preset_path
from gankit.errors import ConfigError
from gankit.nets import DCGANDiscriminator, DCGANGenerator
from gankit.objectives import OBJECTIVES
from gankit.resolve import build_config
from tests.conftest import tiny_config


@pytest.mark.parametrize("resolution", [28, 32, 48, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_networks_map_noise_to_images_to_logits(resolution, channels):
    generator = DCGANGenerator(latent_dim=16, resolution=resolution, channels=channels, width=8)
    discriminator = DCGANDiscriminator(resolution=resolution, channels=channels, width=8)
    images = generator(torch.randn(3, 16))
    assert images.shape == (3, channels, resolution, resolution)
    assert images.abs().max() <= 1.0
    assert discriminator(images).shape == (3,)


def test_dcgan_generator_starts_at_4x4x512_for_32_pixels():
    generator = DCGANGenerator(latent_dim=100, resolution=32, channels=3, width=64)
    assert generator.start_shape == (512, 4, 4)
    assert isinstance(generator.project_act[0], torch.nn.BatchNorm2d)


def test_dcgan_discriminator_has_no_batch_norm_on_its_first_layer():
    discriminator = DCGANDiscriminator(resolution=32, channels=3, width=8)
    layers = list(discriminator.features)
    assert isinstance(layers[0], torch.nn.Conv2d) and isinstance(layers[1], torch.nn.LeakyReLU)
    assert sum(isinstance(layer, torch.nn.BatchNorm2d) for layer in layers) == 2


def test_dcgan_fully_connected_layers_are_the_infogan_mnist_networks():
    """g_fc / d_fc add InfoGAN's FC 1024 layers (Chen et al. 2016, appendix C.1): z -> FC 1024 ->
    7x7x128 -> 14x14x64 -> 28x28 and 28 -> 14x14x64 -> 7x7x128 -> FC 1024 -> logit."""
    generator = DCGANGenerator(latent_dim=62, resolution=28, channels=1, width=32, fc=1024)
    discriminator = DCGANDiscriminator(resolution=28, channels=1, width=64, fc=1024)
    assert generator.start_shape == (128, 7, 7)
    assert generator.project.in_features == 1024 and generator.project.out_features == 128 * 49
    assert discriminator.to_logit.in_features == 1024
    assert discriminator.hidden[0].in_features == 128 * 49
    images = generator(torch.randn(4, 62))
    assert images.shape == (4, 1, 28, 28)
    assert discriminator(images).shape == (4,)
    plain = DCGANGenerator(latent_dim=62, resolution=28, channels=1, width=32)
    assert plain.project.in_features == 62  # fc=0: z straight to the first map, as before
    assert set(plain.state_dict()) < set(generator.state_dict())


def _activations(network: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in network.modules() if isinstance(m, (torch.nn.ReLU, torch.nn.LeakyReLU))]


def test_dcgan_generator_uses_relu_and_the_discriminator_leaky_relu():
    """Radford et al. 2015, section 3: ReLU in G (tanh output), LeakyReLU in D; InfoGAN's FC
    layer (Chen et al. 2016, appendix C.1) is ReLU in G too. leaky_relu is an option for G."""
    torch.manual_seed(0)
    relu = DCGANGenerator(latent_dim=16, resolution=28, channels=1, width=8, fc=32)
    torch.manual_seed(0)
    leaky = DCGANGenerator(
        latent_dim=16, resolution=28, channels=1, width=8, fc=32, activation="leaky_relu"
    )
    relu_layers, leaky_layers = _activations(relu), _activations(leaky)
    assert len(relu_layers) == len(leaky_layers) == 3  # FC, the 7x7 map, the 14x14 map
    assert all(type(layer) is torch.nn.ReLU for layer in relu_layers)
    assert all(type(layer) is torch.nn.LeakyReLU for layer in leaky_layers)
    assert all(layer.negative_slope == 0.2 for layer in leaky_layers)
    # The same parameters (an activation has none): old state dicts load into either.
    assert {k: v.shape for k, v in relu.state_dict().items()} == {
        k: v.shape for k, v in leaky.state_dict().items()
    }
    leaky.load_state_dict(relu.state_dict())
    seen: dict[str, torch.Tensor] = {}
    for name, generator in (("relu", relu), ("leaky", leaky)):  # FC -> BN -> activation
        bn, act = generator.hidden[1], generator.hidden[2]
        bn.register_forward_hook(lambda m, i, out, name=name: seen.update({name + "_in": out}))
        act.register_forward_hook(lambda m, i, out, name=name: seen.update({name: out}))
    z = torch.randn(8, 16)
    assert not torch.equal(relu(z), leaky(z))
    torch.testing.assert_close(seen["relu_in"], seen["leaky_in"])
    pre = seen["relu_in"]
    assert pre.min() < 0
    torch.testing.assert_close(seen["relu"], pre.clamp(min=0))
    torch.testing.assert_close(seen["leaky"], torch.where(pre > 0, pre, 0.2 * pre))
    discriminator = DCGANDiscriminator(resolution=28, channels=1, width=8, fc=32)
    assert [type(layer) for layer in _activations(discriminator)] == [torch.nn.LeakyReLU] * 3
    with pytest.raises(ConfigError, match="relu or leaky_relu"):
        DCGANGenerator(latent_dim=16, resolution=28, channels=1, activation="elu")  # type: ignore[arg-type]


def test_dcgan_at_64_pixels_is_the_papers_1024_channel_generator():
    """Radford et al. 2015, figure 1: 4x4x1024 -> 8x8x512 -> 16x16x256 -> 32x32x128 -> 64x64x3
    at the default width; D with width 128 mirrors it (Newmu/dcgan_code: ndf = 128)."""
    generator = DCGANGenerator(latent_dim=100, resolution=64, channels=3)
    assert generator.start_shape == (1024, 4, 4)
    assert generator.project.out_features == 1024 * 4 * 4
    convolutions = [m for m in generator.blocks if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels) for c in convolutions] == [
        (1024, 512), (512, 256), (256, 128), (128, 3)
    ]  # fmt: skip
    discriminator = DCGANDiscriminator(resolution=64, channels=3, width=128)
    convolutions = [m for m in discriminator.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convolutions] == [128, 256, 512, 1024]
    assert discriminator.to_logit.in_features == 1024 * 4 * 4
    capped = DCGANGenerator(
        latent_dim=100, resolution=64, channels=3, max_channels=512
    )  # configs saved before: 4x4x512
    assert capped.start_shape == (512, 4, 4)


@pytest.mark.parametrize("resolution", [30, 9, 4])
def test_dcgan_rejects_resolutions_it_cannot_build(resolution):
    with pytest.raises(ConfigError, match=f"data.resolution={resolution}"):
        DCGANGenerator(latent_dim=8, resolution=resolution, channels=1)


def test_dcgan_fc_layers_refuse_a_batch_of_one():
    # BatchNorm1d after the FC layer cannot normalise one value per unit: one line, at build.
    with pytest.raises(ConfigError, match=r"train\.batch_size >= 2"):
        OBJECTIVES.get("dcgan")(tiny_config("dcgan", "train.batch_size=1"))
    OBJECTIVES.get("dcgan")(
        tiny_config("dcgan", "train.batch_size=1", "model.g_fc=0", "model.d_fc=0")
    )


DCGAN_GENERATORS = {
    "dcgan": (),
    "lsgan": (),
    "wgan": (),
    "wgan-gp": (),
    "cgan": ("model.architecture=conv", "model.g_width=4", "model.d_width=4", "data.resolution=16"),
}


def _activation_types(network: torch.nn.Module) -> list[type]:
    return [
        type(m) for m in network.modules() if isinstance(m, (torch.nn.ReLU, torch.nn.LeakyReLU))
    ]


@pytest.mark.parametrize("family", sorted(DCGAN_GENERATORS))
def test_dcgan_generators_use_relu_unless_model_g_activation_says_leaky_relu(family):
    """Radford et al. 2015, section 3: ReLU in G, LeakyReLU in D; model.g_activation=leaky_relu
    puts LeakyReLU(0.2) in G and leaves D (or the critic) as it is."""
    overrides = DCGAN_GENERATORS[family]
    default = OBJECTIVES.get(family)(tiny_config(family, *overrides), num_classes=10)
    leaky_cfg = tiny_config(family, *overrides, "model.g_activation=leaky_relu")
    leaky = OBJECTIVES.get(family)(leaky_cfg, num_classes=10)
    assert default.model_cfg.g_activation == "relu"
    relu_types = _activation_types(default.networks["generator"])
    leaky_types = _activation_types(leaky.networks["generator"])
    assert relu_types and set(relu_types) == {torch.nn.ReLU}
    assert leaky_types == [torch.nn.LeakyReLU] * len(relu_types)
    (judge,) = set(default.networks) - {"generator"}
    assert set(_activation_types(default.networks[judge])) == {torch.nn.LeakyReLU}
    assert _activation_types(default.networks[judge]) == _activation_types(leaky.networks[judge])
    assert default.networks["generator"].state_dict().keys() == (
        leaky.networks["generator"].state_dict().keys()
    )


def test_dcgan_default_preset_at_64_pixels_has_the_papers_channels():
    """configs/dcgan/default.yaml (64 px): G 4x4x1024 -> 512 -> 256 -> 128 (Radford et al. 2015,
    figure 1) and D 128 -> 256 -> 512 -> 4x4x1024 (Newmu/dcgan_code, ndf = 128)."""
    cfg = build_config(load_yaml(preset_path("dcgan", "default")), family="dcgan")
    networks = OBJECTIVES.get("dcgan")(cfg).networks
    generator, discriminator = networks["generator"], networks["discriminator"]
    assert cfg.data.resolution == 64 and generator.start_shape == (1024, 4, 4)
    g_convs = [m for m in generator.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    d_convs = [m for m in discriminator.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in g_convs] == [512, 256, 128, 3]
    assert [c.out_channels for c in d_convs] == [128, 256, 512, 1024]
