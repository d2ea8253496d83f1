"""Each family: one D step and one G step change the weights they should and no others."""

from __future__ import annotations

import math

import pytest
import torch

from gankit.config import load_yaml, preset_path
from gankit.errors import ConfigError, GankitError
from gankit.losses import (
    bce_discriminator_loss,
    minimax_generator_loss,
    non_saturating_generator_loss,
)
from gankit.objectives import OBJECTIVES
from gankit.resolve import build_config
from gankit.training import Trainer
from tests.conftest import tiny_config
from tests.tiny_models import PARTIAL_UPDATES


def _snapshot(network: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in network.state_dict().items()}


def _changed(before: dict[str, torch.Tensor], network: torch.nn.Module) -> set[str]:
    return {k for k, v in network.state_dict().items() if not torch.equal(before[k], v)}


def _parameter_names(network: torch.nn.Module) -> set[str]:
    return {name for name, _ in network.named_parameters()}


@pytest.mark.parametrize("family", OBJECTIVES.names())
def test_each_phase_updates_its_networks_and_no_others(family, tmp_path):
    trainer = Trainer(tiny_config(family), tmp_path)
    networks = trainer.objective.networks
    names = [p.name for p in trainer.phases]
    assert "generator" in names and ({"discriminator", "critic"} & set(names)), names
    for phase in trainer.phases:
        before = {name: _snapshot(net) for name, net in networks.items()}
        trainer._run_phase(phase)
        for name, network in networks.items():
            changed = _changed(before[name], network) & _parameter_names(network)
            if name in phase.networks and family in PARTIAL_UPDATES:
                assert changed, f"{phase.name} left {name} unchanged"
            elif name in phase.networks:
                # A parameter may stay only if its gradient was exactly zero, e.g. the output
                # bias of a hinge-loss D at initialisation (the real and fake means cancel).
                still = _parameter_names(network) - changed
                params = dict(network.named_parameters())
                untouched = {k for k in still if params[k].grad is None or params[k].grad.any()}
                assert changed and not untouched, f"{phase.name} left {name}: {sorted(untouched)}"
            else:
                assert not changed, f"{phase.name} changed {name}: {sorted(changed)[:3]}"


def test_bce_discriminator_loss_matches_the_value_function():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    d_real, d_fake = torch.sigmoid(real), torch.sigmoid(fake)
    expected = -(torch.log(d_real).mean() + torch.log(1 - d_fake).mean())
    assert bce_discriminator_loss(real, fake).item() == pytest.approx(expected.item(), rel=1e-6)


def test_label_smoothing_moves_only_the_real_target():
    real, fake = torch.tensor([2.0]), torch.tensor([0.5])
    smoothed = bce_discriminator_loss(real, fake, real_target=0.9).item()
    d_real, d_fake = torch.sigmoid(real), torch.sigmoid(fake)
    expected = -(0.9 * torch.log(d_real) + 0.1 * torch.log(1 - d_real)) - torch.log(1 - d_fake)
    assert smoothed == pytest.approx(expected.item(), rel=1e-6)


def test_generator_losses():
    logits = torch.tensor([1.5, -0.5])
    d = torch.sigmoid(logits)
    assert minimax_generator_loss(logits).item() == pytest.approx(
        torch.log(1 - d).mean().item(), rel=1e-6
    )
    assert non_saturating_generator_loss(logits).item() == pytest.approx(
        -torch.log(d).mean().item(), rel=1e-6
    )
    # The non-saturating loss keeps a strong gradient where D confidently rejects the fakes.
    weak = torch.tensor([-8.0], requires_grad=True)
    (minimax_grad,) = torch.autograd.grad(minimax_generator_loss(weak), weak)
    (ns_grad,) = torch.autograd.grad(non_saturating_generator_loss(weak), weak)
    assert abs(ns_grad.item()) > 100 * abs(minimax_grad.item())


@pytest.mark.parametrize("choice", ["minimax", "non-saturating"])
def test_gan_generator_loss_option_is_used(choice, tmp_path):
    trainer = Trainer(tiny_config("gan", f"model.generator_loss={choice}"), tmp_path)
    torch.manual_seed(0)
    loss, _ = trainer.objective.loss("generator", None)
    torch.manual_seed(0)
    fake_logits = trainer.objective.networks["discriminator"](
        trainer.objective.generate(trainer.objective.sample_inputs(trainer.cfg.train.batch_size))
    )
    reference = minimax_generator_loss if choice == "minimax" else non_saturating_generator_loss
    assert loss.item() == pytest.approx(reference(fake_logits).item(), rel=1e-5)
    assert math.copysign(1, loss.item()) == (-1 if choice == "minimax" else 1)


def test_dcgan_fc_layers_refuse_a_batch_of_one():
    # BatchNorm1d after the FC layer cannot normalise one value per unit: one line, at build.
    with pytest.raises(ConfigError, match=r"train\.batch_size >= 2"):
        OBJECTIVES.get("dcgan")(tiny_config("dcgan", "train.batch_size=1"))
    OBJECTIVES.get("dcgan")(
        tiny_config("dcgan", "train.batch_size=1", "model.g_fc=0", "model.d_fc=0")
    )


@pytest.mark.parametrize("family", OBJECTIVES.names())
def test_each_family_resumes_bit_identically_and_exports(family, tmp_path):
    straight = Trainer(tiny_config(family, "train.steps=4"), tmp_path / "straight")
    straight.fit()
    Trainer(tiny_config(family, "train.steps=2"), tmp_path / "resumed").fit()
    resumed = Trainer(tiny_config(family, "train.steps=4"), tmp_path / "resumed", resume=True)
    resumed.fit()
    for name, network in straight.objective.networks.items():
        other = resumed.objective.networks[name].state_dict()
        different = [k for k, v in network.state_dict().items() if not torch.equal(v, other[k])]
        assert not different, f"{family} {name}: {different[:3]} differ after resume"

    import gankit

    loaded = gankit.load(tmp_path / "straight")
    if loaded.is_translator:
        inputs = straight.fixed_inputs["a"][:2]
        scale = straight.objective.scale
        expected = straight.objective.generate_eval({"a": inputs})
        translated = loaded.translate(inputs)
        assert translated.shape[-2:] == (inputs.shape[-2] * scale, inputs.shape[-1] * scale)
        # same weights; the live network may be NHWC (the fast path), the export
        # NCHW: other convolution kernels, equal to float rounding
        expected = straight.objective.metric_view(expected)
        torch.testing.assert_close(translated, expected, rtol=0, atol=1e-5)
        with pytest.raises(GankitError, match="translate"):
            loaded.sample(3, seed=1)
        return
    images = loaded.sample(3, seed=1)
    assert images.shape[0] == 3 and images.min() >= -1 and images.max() <= 1
    assert torch.equal(images, loaded.sample(3, seed=1))


# Families whose generator is DCGAN's, with the overrides that select it.
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
