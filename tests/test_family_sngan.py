"""SNGAN (Miyato et al. 2018): hinge loss wiring, spectral norm on every D layer, n_dis, cGAN."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from gankit.config import load_yaml, preset_path
from gankit.errors import ConfigError, GankitError
from gankit.losses import hinge_discriminator_loss, hinge_generator_loss
from gankit.nets.blocks import ClassConditionalBatchNorm2d
from gankit.objectives.base import linear_decay
from gankit.objectives.sngan import SNGAN
from gankit.resolve import build_config
from gankit.training import Trainer
from gankit.training.optim import resolve_phase
from tests.conftest import tiny_config


class Recorder:
    """Records the inputs and outputs of every forward pass of a module."""

    def __init__(self, module: nn.Module) -> None:
        self.calls: list[tuple[tuple[torch.Tensor, ...], torch.Tensor]] = []
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        self.calls.append((args, output.detach().clone()))


def weighted_layers(network: nn.Module) -> list[nn.Module]:
    return [m for m in network.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding))]


def test_discriminator_loss_is_the_hinge_loss_of_its_scores(tmp_path):
    trainer = Trainer(tiny_config("sngan"), tmp_path)
    objective = trainer.objective
    recorder = Recorder(objective.networks["discriminator"])
    batch = next(trainer.loader)
    loss, stats = objective.loss("discriminator", batch)
    (args, scores), = recorder.calls  # fmt: skip
    n = batch["image"].shape[0]
    assert torch.equal(args[0][:n], batch["image"])  # the reals, then as many fakes
    expected = hinge_discriminator_loss(scores[:n], scores[n:])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    manual = torch.relu(1 - scores[:n]).mean() + torch.relu(1 + scores[n:]).mean()
    assert loss.item() == pytest.approx(manual.item(), rel=1e-6)
    assert stats["d_real"].item() == pytest.approx(scores[:n].mean().item(), rel=1e-6)


def test_generator_loss_is_minus_the_mean_score_of_fakes(tmp_path):
    trainer = Trainer(tiny_config("sngan"), tmp_path)
    recorder = Recorder(trainer.objective.networks["discriminator"])
    loss, _ = trainer.objective.loss("generator", None)
    (_, scores), = recorder.calls  # fmt: skip
    assert scores.shape == (trainer.cfg.train.batch_size,)
    assert loss.item() == pytest.approx(hinge_generator_loss(scores).item(), rel=1e-6)
    assert loss.item() == pytest.approx(-scores.mean().item(), rel=1e-6)


def test_every_discriminator_layer_is_spectrally_normalised_and_no_generator_layer(tmp_path):
    objective = Trainer(tiny_config("sngan"), tmp_path).objective
    d_layers = weighted_layers(objective.networks["discriminator"])
    assert len(d_layers) > 8
    assert all(parametrize.is_parametrized(layer, "weight") for layer in d_layers)
    g_layers = weighted_layers(objective.networks["generator"])
    assert not any(parametrize.is_parametrized(layer, "weight") for layer in g_layers)
    assert any(isinstance(m, nn.BatchNorm2d) for m in objective.networks["generator"].modules())


def test_preset_has_the_papers_resnet_setting():
    cfg = build_config(load_yaml(preset_path("sngan", "mnist")), family="sngan")
    assert (cfg.train.lr_g, cfg.train.lr_d, cfg.train.betas) == (2e-4, 2e-4, (0.0, 0.9))
    assert cfg.model.d_steps == 5 and cfg.data.resolution == 28
    phases = {p.name: resolve_phase(p, cfg.train) for p in SNGAN(cfg, num_classes=10).phases()}
    assert phases["discriminator"].repeats == 5 and phases["generator"].repeats == 1
    assert phases["discriminator"].betas == (0.0, 0.9)
    default = build_config(load_yaml(preset_path("sngan", "default")), family="sngan")
    assert default.model.d_steps == 5 and default.train.betas == (0.0, 0.9)


@pytest.mark.parametrize("preset", ["mnist", "default"])
def test_preset_decays_the_learning_rate_linearly_to_zero_from_the_first_step(preset, tmp_path):
    """As the authors' code: LinearShift of Adam's alpha to 0 from iteration 0 to the last."""
    cfg = build_config(load_yaml(preset_path("sngan", preset)), family="sngan")
    steps, start = cfg.train.steps, cfg.train.lr_decay_start
    assert start == 0.0
    for step in (0, 1, steps // 4, steps // 2, steps - 1):
        assert linear_decay(step, steps, start) == pytest.approx(1 - step / steps)
    # what the trainer applies, with the preset's schedule over a 4-step run
    trainer = Trainer(tiny_config("sngan", f"train.lr_decay_start={start}"), tmp_path)
    seen = []
    for _ in range(4):
        trainer.train_step()
        seen.append([trainer.optimizers[p.name].param_groups[0]["lr"] for p in trainer.phases])
    assert seen == [[pytest.approx(2e-4 * f)] * 2 for f in (1, 3 / 4, 1 / 2, 1 / 4)]


def test_discriminator_phase_runs_d_steps_times(tmp_path):
    trainer = Trainer(tiny_config("sngan", "model.d_steps=3"), tmp_path)
    recorder = Recorder(trainer.objective.networks["discriminator"])
    trainer.run_phase(trainer.phases[0])
    assert trainer.phases[0].name == "discriminator" and len(recorder.calls) == 3


@pytest.mark.parametrize("resolution", [16, 28, 32])
def test_samples_have_the_configured_shape(resolution, tmp_path):
    cfg = tiny_config("sngan", f"data.resolution={resolution}")
    objective = SNGAN(cfg)
    images = objective.sample(3, seed=0)
    assert images.shape == (3, 1, resolution, resolution)
    assert images.min() >= -1 and images.max() <= 1
    assert torch.equal(images, objective.sample(3, seed=0))


def test_unconditional_sngan_refuses_labels_and_truncation(tmp_path):
    objective = SNGAN(tiny_config("sngan"))
    with pytest.raises(GankitError, match="sngan does not support labels"):
        objective.sample_inputs(2, labels=torch.tensor([0, 1]))
    with pytest.raises(GankitError, match="truncation"):
        objective.sample_inputs(2, truncation=0.5)


def test_conditional_sngan_uses_cbn_and_projection_and_honours_labels(tmp_path):
    trainer = Trainer(tiny_config("sngan", "model.conditional=true"), tmp_path)
    objective = trainer.objective
    generator, discriminator = objective.networks["generator"], objective.networks["discriminator"]
    assert any(isinstance(m, ClassConditionalBatchNorm2d) for m in generator.modules())
    assert discriminator.head.embed is not None
    labels = torch.tensor([3, 1, 4])
    inputs = objective.sample_inputs(3, labels=labels)
    assert torch.equal(inputs["label"], labels)
    drawn = objective.sample_inputs(500, torch.Generator().manual_seed(0))["label"]
    assert set(drawn.tolist()) == set(range(10))
    recorder = Recorder(discriminator)
    batch = next(trainer.loader)
    objective.loss("discriminator", batch)
    (args, _), = recorder.calls  # fmt: skip
    n = batch["image"].shape[0]
    assert torch.equal(args[1][:n], batch["label"])  # real labels reach the projection
    with pytest.raises(GankitError, match="labels must"):
        objective.sample_inputs(2, labels=torch.tensor([0, 10]))


def test_conditional_sngan_needs_labels():
    with pytest.raises(ConfigError, match="needs class labels"):
        SNGAN(tiny_config("sngan", "model.conditional=true"), num_classes=0)
