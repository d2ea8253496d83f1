"""WGAN and WGAN-GP: the clipping, the penalty and the paper's settings are really used."""

from __future__ import annotations

import pytest
import torch

from gankit.config import load_yaml, preset_path
from gankit.losses import wasserstein_critic_loss, wasserstein_generator_loss
from gankit.nets.critic import DCGANCritic
from gankit.objectives import OBJECTIVES
from gankit.resolve import build_config
from gankit.training import Trainer
from gankit.training.optim import resolve_phase
from tests.conftest import tiny_config


def _preset_objective(family: str):
    cfg = build_config(load_yaml(preset_path(family, "mnist")), family=family)
    return cfg, OBJECTIVES.get(family)(cfg, num_classes=10)


def _phase(preset, name: str):
    """The phase ``name`` with the run's optimiser settings filled in, as the trainer does."""
    cfg, objective = preset
    phase = next(phase for phase in objective.phases() if phase.name == name)
    return resolve_phase(phase, cfg.train)


def _trainer_phase(trainer: Trainer, name: str):
    return next(phase for phase in trainer.phases if phase.name == name)


def test_wgan_preset_follows_algorithm_1():
    preset = _preset_objective("wgan")
    objective = preset[1]
    critic, generator = _phase(preset, "critic"), _phase(preset, "generator")
    assert (critic.optimizer, critic.lr, critic.repeats) == ("rmsprop", 5e-5, 5)
    assert (generator.optimizer, generator.lr, generator.repeats) == ("rmsprop", 5e-5, 1)
    assert objective.model_cfg.clip_value == 0.01


def test_critic_steps_set_the_critic_phase_repeats(tmp_path):
    trainer = Trainer(tiny_config("wgan", "model.critic_steps=3"), tmp_path)
    assert _trainer_phase(trainer, "critic").repeats == 3


def test_weight_clipping_bounds_every_critic_parameter_after_a_critic_step(tmp_path):
    cfg = tiny_config("wgan", "model.clip_value=0.005", "train.lr_d=0.1", "model.critic_steps=1")
    trainer = Trainer(cfg, tmp_path)
    critic = trainer.objective.networks["critic"]
    trainer.run_phase(_trainer_phase(trainer, "critic"))
    values = torch.cat([p.detach().flatten() for p in critic.parameters()])
    assert values.abs().max().item() <= 0.005
    assert (values.abs() == 0.005).float().mean() > 0.5  # lr 0.1 pushed most to the bound
    generator = trainer.objective.networks["generator"]  # the generator is never clipped
    assert max(p.detach().abs().max().item() for p in generator.parameters()) > 0.005


def test_critic_and_generator_losses_are_the_wasserstein_terms(tmp_path):
    trainer = Trainer(tiny_config("wgan"), tmp_path)
    objective, batch = trainer.objective, next(trainer.loader)
    critic, real = objective.networks["critic"], batch["image"]
    torch.manual_seed(1)
    loss, stats = objective.loss("critic", batch)
    torch.manual_seed(1)
    fake = objective.generate(objective.sample_inputs(real.shape[0]))
    expected = critic(fake).mean() - critic(real).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert stats["wasserstein"].item() == pytest.approx(-loss.item())
    torch.manual_seed(2)
    loss, _ = objective.loss("generator", None)
    torch.manual_seed(2)
    fake = objective.generate(objective.sample_inputs(trainer.cfg.train.batch_size))
    assert loss.item() == pytest.approx(-critic(fake).mean().item(), rel=1e-5)
    assert wasserstein_critic_loss(critic(real), critic(fake)).requires_grad
    assert wasserstein_generator_loss(critic(fake)).requires_grad


def _critic_loss_and_grads(objective, batch, seed: int):
    critic = objective.networks["critic"]
    critic.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    loss, stats = objective.loss("critic", batch)
    loss.backward()
    return loss.detach(), stats, [p.grad.clone() for p in critic.parameters()]


@pytest.mark.parametrize("norm", ["layer", "none", "batch"])
@pytest.mark.parametrize(("resolution", "channels"), [(16, 1), (28, 1), (32, 3)])
def test_critic_scores_one_number_per_image(norm, resolution, channels):
    critic = DCGANCritic(resolution=resolution, channels=channels, width=4, norm=norm)
    scores = critic(torch.randn(3, channels, resolution, resolution))
    assert scores.shape == (3,)
