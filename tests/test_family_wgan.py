"""WGAN and WGAN-GP: the clipping, the penalty and the paper's settings are really used."""

from __future__ import annotations

import pytest
import torch

from gankit.config import load_yaml, preset_path
from gankit.losses import gradient_penalty, wasserstein_critic_loss, wasserstein_generator_loss
from gankit.nets.critic import DCGANCritic
from gankit.objectives import OBJECTIVES
from gankit.resolve import build_config
from gankit.training import Trainer
from tests.conftest import tiny_config


def _preset_objective(family: str):
    cfg = build_config(load_yaml(preset_path(family, "mnist")), family=family)
    return OBJECTIVES.get(family)(cfg, num_classes=10)


def _phase(objective, name: str):
    return next(phase for phase in objective.phases() if phase.name == name)


def test_wgan_preset_follows_algorithm_1():
    objective = _preset_objective("wgan")
    critic, generator = _phase(objective, "critic"), _phase(objective, "generator")
    assert (critic.optimizer, critic.lr, critic.repeats) == ("rmsprop", 5e-5, 5)
    assert (generator.optimizer, generator.lr, generator.repeats) == ("rmsprop", 5e-5, 1)
    assert objective.model_cfg.clip_value == 0.01


def test_wgan_gp_preset_follows_algorithm_1():
    objective = _preset_objective("wgan-gp")
    critic, generator = _phase(objective, "critic"), _phase(objective, "generator")
    for phase in (critic, generator):
        assert (phase.optimizer, phase.lr, phase.betas) == ("adam", 1e-4, (0.0, 0.9))
    assert critic.repeats == 5 and objective.model_cfg.gp_lambda == 10.0


def test_critic_steps_set_the_critic_phase_repeats(tmp_path):
    trainer = Trainer(tiny_config("wgan", "model.critic_steps=3"), tmp_path)
    assert _phase(trainer.objective, "critic").repeats == 3


def test_weight_clipping_bounds_every_critic_parameter_after_a_critic_step(tmp_path):
    cfg = tiny_config("wgan", "model.clip_value=0.005", "train.lr_d=0.1", "model.critic_steps=1")
    trainer = Trainer(cfg, tmp_path)
    critic = trainer.objective.networks["critic"]
    trainer._run_phase(_phase(trainer.objective, "critic"))
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


def test_gradient_penalty_is_in_the_critic_loss_with_weight_lambda(tmp_path):
    trainer = Trainer(tiny_config("wgan-gp", "model.gp_lambda=10"), tmp_path)
    objective, batch = trainer.objective, next(trainer.loader)
    with_penalty, stats, grads_with = _critic_loss_and_grads(objective, batch, seed=3)
    objective.model_cfg.gp_lambda = 0.0
    without, _, grads_without = _critic_loss_and_grads(objective, batch, seed=3)
    # The same draws (fakes first, then eps) computed independently:
    torch.manual_seed(3)
    real = batch["image"]
    fake = objective.generate(objective.sample_inputs(real.shape[0]))
    penalty = gradient_penalty(objective.networks["critic"], real, fake)
    assert penalty.item() > 0
    assert (with_penalty - without).item() == pytest.approx(10 * penalty.item(), rel=1e-4)
    assert stats["gradient_penalty"].item() == pytest.approx(penalty.item(), rel=1e-5)
    assert any(not torch.allclose(a, b) for a, b in zip(grads_with, grads_without, strict=True))


def test_wgan_gp_critic_has_no_batch_norm_and_is_never_clipped(tmp_path):
    trainer = Trainer(tiny_config("wgan-gp", "train.lr_d=0.1", "model.critic_steps=1"), tmp_path)
    critic = trainer.objective.networks["critic"]
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in critic.modules())
    trainer._run_phase(_phase(trainer.objective, "critic"))
    assert max(p.detach().abs().max().item() for p in critic.parameters()) > 0.01


@pytest.mark.parametrize("norm", ["layer", "none", "batch"])
@pytest.mark.parametrize(("resolution", "channels"), [(16, 1), (28, 1), (32, 3)])
def test_critic_scores_one_number_per_image(norm, resolution, channels):
    critic = DCGANCritic(resolution, channels, width=4, norm=norm)
    scores = critic(torch.randn(3, channels, resolution, resolution))
    assert scores.shape == (3,)


@pytest.mark.parametrize("norm", ["layer", "none"])
def test_penalty_critics_score_each_image_independently_of_its_batch(norm):
    critic = DCGANCritic(16, 1, width=4, norm=norm).train()
    images = torch.randn(4, 1, 16, 16)
    alone = torch.cat([critic(images[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(critic(images), alone)
